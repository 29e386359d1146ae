"""reader.blocks: how a large raster is cut into per-request blocks (cores + read margins)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from cloudmask import blocks as reader


def _check(blocks, region: Window, size: int, margin: int, width: int, height: int) -> None:
    c0, r0, w, h = (int(v) for v in (region.col_off, region.row_off, region.width, region.height))
    count = np.zeros((height, width), dtype=np.int32)
    for b in blocks:
        core, read = b.core, b.read
        assert 0 < core.width <= size and 0 < core.height <= size
        count[core.row_off:core.row_off + core.height, core.col_off:core.col_off + core.width] += 1
        # the read window holds its core ...
        assert read.col_off <= core.col_off and read.row_off <= core.row_off
        assert read.col_off + read.width >= core.col_off + core.width
        assert read.row_off + read.height >= core.row_off + core.height
        # ... with `margin` px of context on each side, cut only by the raster's edges; the near side reaches back
        # to the nets' 16 px pooling grid of the raster (up to 15 px more)
        assert read.col_off == max(0, (core.col_off - margin) // 16 * 16)
        assert read.row_off == max(0, (core.row_off - margin) // 16 * 16)
        assert read.col_off + read.width == min(width, core.col_off + core.width + margin)
        assert read.row_off + read.height == min(height, core.row_off + core.height + margin)
        assert read.col_off >= 0 and read.row_off >= 0
        assert read.col_off + read.width <= width and read.row_off + read.height <= height
    # cores tile the region exactly once: no gap, no overlap, nothing outside it
    inside = np.zeros_like(count, dtype=bool)
    inside[r0:r0 + h, c0:c0 + w] = True
    assert (count[inside] == 1).all()
    assert (count[~inside] == 0).all()
    # no more blocks than the size needs: only the last block of a row / column is short
    assert len(blocks) == -(-w // size) * -(-h // size)


@pytest.mark.parametrize("width, height, size, margin", [
    (4096, 4096, 2048, 64),  # divides
    (4100, 3000, 2048, 64),  # does not divide
    (10980 // 4, 10980 // 4, 1024, 128),  # a quarter S2 tile, 2745 px: does not divide
    (100, 50, 2048, 64),  # smaller than one block
    (2048, 2049, 2048, 0),  # no margin; one px over
])
def test_whole_raster(width, height, size, margin):
    region = Window(0, 0, width, height)
    blocks = reader.blocks(region, size, margin, width, height)
    _check(blocks, region, size, margin, width, height)


def test_hand_computed_small_case():
    blocks = reader.blocks(Window(0, 0, 5, 3), 2, 1, 5, 3)
    cores = [(b.core.col_off, b.core.row_off, b.core.width, b.core.height) for b in blocks]
    reads = [(b.read.col_off, b.read.row_off, b.read.width, b.read.height) for b in blocks]
    assert cores == [(0, 0, 2, 2), (2, 0, 2, 2), (4, 0, 1, 2), (0, 2, 2, 1), (2, 2, 2, 1), (4, 2, 1, 1)]
    # the far side: 1 px of margin; the near side back to the 16 px grid, here the raster's origin
    assert reads == [(0, 0, 3, 3), (0, 0, 5, 3), (0, 0, 5, 3), (0, 0, 3, 3), (0, 0, 5, 3), (0, 0, 5, 3)]


def test_region_inside_raster_reads_context_outside_region():
    # a window in the middle of the raster: margins come from pixels outside the window (real context)
    region = Window(300, 200, 500, 400)
    blocks = reader.blocks(region, 256, 32, 1000, 1000)
    _check(blocks, region, 256, 32, 1000, 1000)
    assert blocks[0].read.col_off == 256 and blocks[0].read.row_off == 160  # 300 - 32 and 200 - 32, down to the grid


@settings(max_examples=150, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300), size=st.integers(1, 128), margin=st.integers(0, 40),
       data=st.data())
def test_any_region(width, height, size, margin, data):
    c0 = data.draw(st.integers(0, width - 1))
    r0 = data.draw(st.integers(0, height - 1))
    w = data.draw(st.integers(1, width - c0))
    h = data.draw(st.integers(1, height - r0))
    region = Window(c0, r0, w, h)
    _check(reader.blocks(region, size, margin, width, height), region, size, margin, width, height)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_block_reader_refuses_a_strip_bomb_before_reading(tmp_path):
    """A file declaring one 20000^2 x 4 uint16 deflate strip (3.2 GB decoded for any block of it): refused
    from its header, before a pixel is read or a request is sent."""
    import resource

    from tiffcraft import strip_bomb
    from cloudmask.raster.errors import OverBudget

    path = tmp_path / "bomb.tif"
    path.write_bytes(strip_bomb(20000, 20000, bands=4))
    sent = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(OverBudget, match="decode budget of 1024 MiB"):
        reader.run(path, tmp_path / "mask.tif", lambda tif, win: sent.append(tif), block=2048)
    assert sent == []
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def _tif(path, count, descriptions=None):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=count, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(0, 6000, 10, 10)) as dst:
        dst.write(np.full((count, 600, 600), 1000, np.uint16))
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
    return path


def test_send_bands_keeps_what_a_model_reads_and_names_it(tmp_path):
    import rasterio

    from cloudmask import contract
    from cloudmask.blocks import block_geotiff, send_bands
    from rasterio.io import MemoryFile

    l1c = _tif(tmp_path / "l1c.tif", 13, contract.S2_BANDS)
    bare = _tif(tmp_path / "bare.tif", 13)  # no descriptions: 13 bands read as L1C's order, as the service would
    four = _tif(tmp_path / "four.tif", 4, ("B02", "B03", "B04", "B08"))
    with rasterio.open(l1c) as src:
        idx, names = send_bands(src)
        assert idx == [2, 3, 4, 8, 12, 13] and names == list(contract.BANDS_6)
        with MemoryFile(block_geotiff(src, Window(0, 0, 600, 600), indexes=idx, names=names)) as m, m.open() as b:
            assert b.count == 6 and b.descriptions == contract.BANDS_6
    with rasterio.open(bare) as src:
        assert send_bands(src) == ([2, 3, 4, 8, 12, 13], list(contract.BANDS_6))
        # names the user gave that do not fit the file: everything goes, and the service says what is wrong
        assert send_bands(src, ["B02", "B03"]) == (list(range(1, 14)), None)
    with rasterio.open(four) as src:
        assert send_bands(src) == ([1, 2, 3, 4], list(contract.BANDS_4))


def test_block_cuts_leave_no_sliver_and_stay_on_the_pooling_grid():
    from rasterio.windows import Window

    from cloudmask.blocks import BLOCK, MARGIN, blocks

    for size in (1, 1919, 1920, 1921, 1933, 2900, 3841, 10980):
        bs = blocks(Window(0, 0, size, 7), BLOCK, MARGIN, size, 7)
        cores = sorted({(int(b.core.col_off), int(b.core.width)) for b in bs})
        assert cores[0][0] == 0 and sum(w for _, w in cores) == size  # the cores tile the axis
        assert all(a + w == b for (a, w), (b, _) in zip(cores, cores[1:]))
        assert all(w >= min(size, BLOCK // 2 - 16) for _, w in cores)  # no sliver
        assert all(w <= BLOCK for _, w in cores)
        assert all(int(b.read.col_off) % 16 == 0 for b in bs)  # reads start on the nets' pooling grid
