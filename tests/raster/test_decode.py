"""GeoTIFF bytes -> Raster, through real rasterio on real files written by the test."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import rasterio
import rasterio.windows
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window

from cloudmask.raster import decode
from cloudmask.raster.errors import BadInput, OverBudget

TRANSFORM = Affine(20.0, 0.0, 399960.0, 0.0, -20.0, 5000040.0)


def _data(bands=3, h=40, w=50, dtype=np.uint16):
    # every value distinct so a misplaced window or band shows
    return np.arange(bands * h * w, dtype=np.int64).reshape(bands, h, w).astype(dtype)


def test_round_trip_georeferencing(geotiff_bytes):
    data = _data()
    tif = geotiff_bytes(data, descriptions=("B02", "red", None), nodata=0, crs="EPSG:32633",
                        transform=TRANSFORM, tags={"BOA_ADD_OFFSET": "-1000"})
    r = decode.decode(tif)
    np.testing.assert_array_equal(r.data, data)
    assert r.data.dtype == np.uint16
    assert r.crs == CRS.from_epsg(32633)
    assert r.transform == TRANSFORM
    assert r.descriptions == ("B02", "red", None)
    assert r.nodata == 0
    assert r.tags["BOA_ADD_OFFSET"] == "-1000"


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_round_trip_without_nodata_or_crs(geotiff_bytes):
    data = _data(bands=1, dtype=np.float32)
    r = decode.decode(geotiff_bytes(data, crs=None, transform=Affine.identity()))
    assert r.nodata is None
    assert r.crs is None
    np.testing.assert_array_equal(r.data, data)


def test_tiled_compressed_bigtiff(geotiff_bytes):
    data = _data(bands=2, h=300, w=270)
    tif = geotiff_bytes(data, tiled=True, blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="YES")
    assert tif[:4] == b"II+\x00"
    r = decode.decode(tif)
    np.testing.assert_array_equal(r.data, data)


@pytest.mark.parametrize("window", [(0, 0, 50, 40), (7, 3, 11, 13), (49, 39, 1, 1), (0, 20, 50, 20)])
def test_window_reads_that_window(geotiff_bytes, window):
    data = _data()
    r = decode.decode(geotiff_bytes(data, transform=TRANSFORM), window=list(window))
    col, row, w, h = window
    np.testing.assert_array_equal(r.data, data[:, row:row + h, col:col + w])
    assert r.transform == rasterio.windows.transform(Window(col, row, w, h), TRANSFORM)
    # and the window's upper-left corner is where the full grid puts that pixel
    assert (r.transform.c, r.transform.f) == TRANSFORM @ (col, row)


def test_window_accepts_strings(geotiff_bytes):
    r = decode.decode(geotiff_bytes(_data()), window=["1", "2", "3", "4"])
    assert r.data.shape == (3, 4, 3)


@pytest.mark.parametrize("window", [
    (0, 0, 51, 40), (0, 0, 50, 41), (45, 0, 10, 10), (0, 35, 10, 10), (-1, 0, 10, 10), (0, -1, 10, 10),
    (50, 0, 1, 1), (100, 100, 5, 5),
])
def test_window_outside_raster(geotiff_bytes, window):
    with pytest.raises(BadInput, match="outside"):
        decode.decode(geotiff_bytes(_data()), window=list(window))


@pytest.mark.parametrize("window", [(0, 0, 0, 10), (0, 0, 10, 0), (0, 0, -5, 10), (5, 5, 10, -1)])
def test_window_zero_or_negative_size(geotiff_bytes, window):
    with pytest.raises(BadInput, match="positive"):
        decode.decode(geotiff_bytes(_data()), window=list(window))


@pytest.mark.parametrize("window", [(0, 0, 10), (0, 0, 10, 10, 1), ("a", 0, 1, 1), {"col": 0}, 5])
def test_window_malformed(geotiff_bytes, window):
    with pytest.raises(BadInput, match="window"):
        decode.decode(geotiff_bytes(_data()), window=window)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("payload", [
    _png_bytes(), os.urandom(4096), b"hello, this is text", b"GIF89a" + bytes(100), b"\x00" * 64,
], ids=["png", "random", "text", "gif", "zeros"])
def test_not_a_tiff(payload):
    with pytest.raises(BadInput, match="not a TIFF"):
        decode.decode(payload)


@pytest.mark.parametrize("payload", [b"", None, bytearray()])
def test_empty(payload):
    with pytest.raises(BadInput, match="empty"):
        decode.decode(payload)


def test_tiff_magic_then_garbage():
    with pytest.raises(BadInput):
        decode.decode(b"II*\x00" + os.urandom(2000))


@pytest.mark.parametrize("creation", [{}, {"compress": "deflate", "tiled": True, "blockxsize": 64,
                                           "blockysize": 64}])
def test_truncated_tiff(geotiff_bytes, creation):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 10000, size=(4, 200, 200), dtype=np.uint16)  # random: deflate can't shrink it away
    tif = geotiff_bytes(data, **creation)
    np.testing.assert_array_equal(decode.decode(tif).data, data)  # the whole file is fine
    with pytest.raises(BadInput, match="decoded"):
        decode.decode(tif[: len(tif) // 2])


@pytest.mark.parametrize("cut", [8, 16, 100])
def test_truncated_header(geotiff_bytes, cut):
    tif = geotiff_bytes(_data())
    with pytest.raises(BadInput):
        decode.decode(tif[:cut])


def test_over_budget(geotiff_bytes):
    tif = geotiff_bytes(_data(h=40, w=50))
    assert decode.decode(tif, max_pixels=2000).data.shape == (3, 40, 50)  # exactly at the budget is fine
    with pytest.raises(OverBudget, match="budget") as e:
        decode.decode(tif, max_pixels=1999)
    assert isinstance(e.value, BadInput)  # the service maps OverBudget before BadInput; both are bad input
    # a window that fits the budget is accepted from the same file
    assert decode.decode(tif, window=[0, 0, 40, 40], max_pixels=1600).data.shape == (3, 40, 40)
    with pytest.raises(OverBudget):
        decode.decode(tif, window=[0, 0, 41, 40], max_pixels=1600)


def test_overbudget_is_badinput_subclass():
    assert issubclass(OverBudget, BadInput)
    assert issubclass(BadInput, ValueError)


# -- hostile headers: refused from the header, before any pixel is decoded --------------------

@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("side", [20000, 100000])
def test_strip_bomb_refused_before_decoding(side):
    """A ~170-byte file declaring one deflate strip of side^2 x 3 uint16 px: GDAL would allocate and decode the
    whole strip (2.4 GB at 20000, 60 GB at 100000) to read a 512 px window. 20000 px took 8.5 s and 3.1 GB here
    before the decode budget."""
    import resource

    from tiffcraft import strip_bomb

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(OverBudget, match="decode budget of 1024 MiB"):
        decode.decode(strip_bomb(side, side), window=[0, 0, 512, 512], max_pixels=4096 * 4096)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: nothing decoded


def test_decode_budget_counts_whole_blocks(geotiff_bytes):
    data = _data(bands=4, h=256, w=256)
    tiled = geotiff_bytes(data, tiled=True, blockxsize=128, blockysize=128, interleave="band")
    with MemoryFile(tiled) as mem, mem.open() as src:
        # a 10 px window across a tile corner touches 4 tiles of 128^2 x 2 bytes, per band read
        assert decode.decode_bytes(src, Window(120, 120, 10, 10), [1, 2]) == 4 * 128 * 128 * 2 * 2
        assert decode.decode_bytes(src, None, None) == 4 * 128 * 128 * 2 * 4
    pixel = geotiff_bytes(data, tiled=True, blockxsize=128, blockysize=128, interleave="pixel")
    with MemoryFile(pixel) as mem, mem.open() as src:
        # pixel-interleaved tiles hold every band, however few are read
        assert decode.decode_bytes(src, Window(0, 0, 10, 10), [1]) == 128 * 128 * 2 * 4
    # the budget is max_pixels * DECODE_BYTES_PER_PIXEL: the whole file, tiled, fits max_pixels = its size
    np.testing.assert_array_equal(decode.decode(tiled, max_pixels=256 * 256).data, data)
    with pytest.raises(OverBudget, match="decode budget"):  # 4 tiles of 4 bands = 512 KiB > 64 B x 4096
        decode.decode(tiled, window=[120, 120, 10, 10], max_pixels=4096)


def test_non_utf8_band_description_is_bad_input(geotiff_bytes):
    from tiffcraft import non_utf8_description

    tif = non_utf8_description(geotiff_bytes(_data(), descriptions=("B02", "QQQQ", "B04")), "QQQQ")
    with pytest.raises(BadInput, match="band descriptions are not valid UTF-8"):
        decode.decode(tif)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_pixels_are_refused(geotiff_bytes, dtype):
    """Casting would drop the imaginary part silently."""
    with pytest.raises(BadInput, match=f"{dtype} is not supported"):
        decode.decode(geotiff_bytes((_data(bands=1) + 1j).astype(dtype)))


# -- generated and mutated files: BadInput or a Raster, never another exception, never over budget ----

def _decode_or_bad_input(payload: bytes, window=None):
    """decode() with a small budget (512^2 px, so 16 MiB decoded at most): a Raster or BadInput, and the
    process's peak memory no more than ~100 MB above where it was (a declared 100000^2 strip would be GBs)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        r = decode.decode(payload, window=window, max_pixels=512 * 512)
    except BadInput:
        r = None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024  # KiB
    if r is None:
        return None
    assert r.data.ndim == 3 and r.data.shape[1] * r.data.shape[2] <= 512 * 512
    assert not np.iscomplexobj(r.data)  # complex sample formats (339 = 5, 6) are refused, not cast
    return r


TAG_VALUES = {256: st.integers(0, 2**32 - 1), 257: st.integers(0, 2**32 - 1),  # width, height
              258: st.sampled_from([1, 4, 8, 12, 16, 24, 32, 64, 0, 65535]),  # bits per sample
              259: st.sampled_from([1, 5, 7, 8, 32773, 34925, 0, 9999]),  # compression
              277: st.integers(0, 70),  # samples per pixel
              278: st.integers(0, 2**32 - 1),  # rows per strip
              284: st.sampled_from([1, 2, 0, 7]),  # planar configuration
              339: st.sampled_from([1, 2, 3, 4, 5, 6, 0, 99]),  # sample format (5, 6: complex)
              322: st.integers(0, 2**20), 323: st.integers(0, 2**20)}  # tile width, height


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@settings(max_examples=150, deadline=None)
@given(values=st.fixed_dictionaries({}, optional=TAG_VALUES) | st.fixed_dictionaries(
           {256: st.integers(1, 200000), 257: st.integers(1, 200000), 258: st.sampled_from([8, 16, 32]),
            259: st.just(8), 277: st.integers(1, 4), 284: st.just(1)}),  # one deflate strip, any size
       body=st.binary(max_size=256) | st.just(b"\0" * 64),
       window=st.none() | st.just([0, 0, 16, 16]))
def test_generated_headers(values, body, window):
    """Hand-written TIFF headers with arbitrary sizes, bit depths, compressions, layouts and sample formats."""
    import zlib

    from tiffcraft import LONG, SHORT, tiff

    samples = values.get(277, 1)
    tags = {262: (SHORT, [1])}
    for tag, v in values.items():
        tags[tag] = (SHORT, [v] * max(1, min(samples, 70))) if tag in (258, 339) else (
            (LONG if tag in (256, 257, 278, 322, 323) else SHORT), [v])
    if 322 in tags or 323 in tags:
        tags.update({324: (LONG, [0]), 325: (LONG, [len(body)])})
    else:
        tags.update({273: (LONG, [0]), 279: (LONG, [len(body)])})
    payload = tiff(tags, zlib.compress(body) if values.get(259) == 8 else body)
    _decode_or_bad_input(payload, window)


@pytest.fixture(scope="module")
def real_tiffs():
    """Real files as writers make them: striped, tiled + deflate, pixel- and band-interleaved, with tags."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 10000, size=(4, 64, 64), dtype=np.uint16)
    out = []
    for creation in ({}, {"tiled": True, "blockxsize": 32, "blockysize": 32, "compress": "deflate"},
                     {"interleave": "band", "compress": "lzw"}):
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", width=64, height=64, count=4, dtype="uint16", crs="EPSG:32633",
                          transform=TRANSFORM, nodata=0, **creation) as dst:
                dst.write(data)
                dst.descriptions = ("B02", "B03", "B04", "B08")
                dst.update_tags(BOA_ADD_OFFSET="-1000")
            out.append(mem.read())
    return out


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, 2), flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)),
                                               min_size=1, max_size=8),
       cut=st.none() | st.integers(8, 2**20), header_only=st.booleans())
def test_mutated_real_files(real_tiffs, which, flips, cut, header_only):
    """Real GeoTIFFs with bytes overwritten (in the header and IFDs, or anywhere) and cut short."""
    raw = bytearray(real_tiffs[which])
    span = 512 if header_only else len(raw)
    for pos, val in flips:
        raw[pos % span] = val
    if cut is not None:
        raw = raw[:cut % len(raw) or 8]
    _decode_or_bad_input(bytes(raw))


def test_an_embedded_file_decodes_as_the_file_itself(geotiff_bytes):
    """A GeoTIFF inside a larger buffer (a V2 BYTES tensor) decodes where it lies: the same pixels,
    window, georeferencing and budget checks as the file on its own."""
    data = _data()
    tif = geotiff_bytes(data, descriptions=("B02", "red", None), nodata=0, crs="EPSG:32633", transform=TRANSFORM)
    buf = b"\x00" * 7 + tif + b"trailing bytes"
    emb = decode.Embedded(buf, 7, len(tif))
    for window in (None, [1, 2, 30, 20]):
        a, b = decode.decode(emb, window=window), decode.decode(tif, window=window)
        np.testing.assert_array_equal(a.data, b.data)
        assert (a.transform, a.descriptions, a.nodata, a.crs) == (b.transform, b.descriptions, b.nodata, b.crs)
    with pytest.raises(OverBudget):
        decode.decode(emb, max_pixels=100)
    with pytest.raises(BadInput, match="magic"):
        decode.decode(decode.Embedded(buf, 0, len(tif)))
    with pytest.raises(BadInput, match="corrupt"):
        decode.decode(decode.Embedded(buf, 7, len(tif) // 3))  # cut short
    with pytest.raises(ValueError):
        decode.Embedded(buf, 7, len(buf))  # past the end


def test_from_array_is_what_decode_gives_for_the_same_pixels():
    """A raster sent as pixels (the service's `raster` input) is the Raster a GeoTIFF of them decodes to."""
    from affine import Affine
    from rasterio.io import MemoryFile

    from cloudmask.raster.decode import decode, from_array

    rng = np.random.default_rng(0)
    data = rng.integers(0, 5000, size=(4, 70, 90), dtype=np.uint16)
    t = Affine(10, 0, 500000, 0, -10, 4000000)
    names = ("B02", "B03", "B04", "B08")
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=90, height=70, count=4, dtype="uint16", crs="EPSG:32633", transform=t,
                      nodata=0) as dst:
            dst.write(data)
            dst.descriptions = names
            dst.update_tags(BOA_ADD_OFFSET="-1000")
        a = decode(mem.read(), window=(5, 6, 40, 30), pick=lambda d, c: [3, 1])
    b = from_array(data, names, "EPSG:32633", tuple(t)[:6], 0, {"BOA_ADD_OFFSET": "-1000"}, window=(5, 6, 40, 30),
                   pick=lambda d, c: [3, 1])
    assert np.array_equal(a.data, b.data)
    assert (a.crs, a.transform, a.nodata, a.tags["BOA_ADD_OFFSET"]) == (b.crs, b.transform, b.nodata,
                                                                        b.tags["BOA_ADD_OFFSET"])
    whole = from_array(data, names)
    assert np.shares_memory(whole.data, data) and whole.crs is None  # no copy; no georeferencing given
