"""Tiling and stitching: plan -> chips -> (model) -> Stitcher -> probabilities -> mask.

The "identity-like model" below returns a chip's first three channels as its "probabilities":
whatever the plan, the padding and the blending do, stitching its output must give back the
input exactly, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmask import contract
from cloudmask.raster import stitch, tile


def identity_model(chips: np.ndarray) -> np.ndarray:
    return chips[..., :3].copy()


def run(image: np.ndarray, model=identity_model, chip=contract.CHIP, overlap=64,
        multiple=contract.CHIP_MULTIPLE, batch=4):
    h, w = image.shape[:2]
    tp = tile.plan(h, w, chip=chip, overlap=overlap, multiple=multiple)
    st_ = stitch.Stitcher(tp, 3)
    shapes, seen = set(), []
    for positions in tile.batches(tp, batch):
        assert 1 <= len(positions) <= batch
        c = tile.chips(image, tp, positions)
        shapes.add(c.shape[1:])
        seen.extend(positions)
        st_.add(model(c), positions)
    assert sorted(seen) == sorted(tp.positions) and len(seen) == len(tp)  # every chip sent exactly once
    assert len(shapes) == 1  # every chip has the same shape, so chips batch together
    return tp, st_, shapes.pop()


def coverage(tp: tile.TilePlan) -> np.ndarray:
    cov = np.zeros((tp.height, tp.width), dtype=np.int32)
    for r, c in tp.positions:
        cov[r:r + tp.chip_h, c:c + tp.chip_w] += 1
    return cov


def check_plan(tp: tile.TilePlan, chip: int, overlap: int, multiple: int) -> None:
    for size, ext, starts in ((tp.height, tp.chip_h, tp.rows), (tp.width, tp.chip_w, tp.cols)):
        assert ext % multiple == 0
        if size >= chip:
            assert ext == chip
        else:
            assert size <= ext < size + multiple  # padded to the next multiple, not to a whole chip
            assert starts == (0,)
        assert starts[0] == 0
        assert list(starts) == sorted(set(starts))
        assert starts[-1] + min(ext, size) == size  # the last chip ends flush with the raster edge
        assert all(s + ext <= max(size, ext) for s in starts)  # no chip reads past the (padded) raster
        # neighbouring chips share at least `overlap` px, so blending has room everywhere
        assert all(b - a <= chip - overlap for a, b in zip(starts, starts[1:]))
    assert (coverage(tp) >= 1).all()


@settings(max_examples=80, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200), chip=st.sampled_from([32, 64]),
       overlap_frac=st.floats(0, 0.5), bands=st.integers(3, 6), batch=st.integers(1, 5), data=st.data())
def test_identity_round_trip_small_chips(h, w, chip, overlap_frac, bands, batch, data):
    overlap = int(overlap_frac * chip)
    seed = data.draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).random((h, w, bands), dtype=np.float32)
    tp, st_, shape = run(image, chip=chip, overlap=overlap, multiple=16, batch=batch)
    check_plan(tp, chip, overlap, 16)
    assert shape == (tp.chip_h, tp.chip_w, bands)
    np.testing.assert_allclose(st_.probabilities(), image[..., :3], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), overlap=st.integers(0, 31))
def test_identity_round_trip_any_overlap(h, w, overlap):
    # the whole range plan() accepts, up to a stride of 1 px (kept small: that is many chips)
    image = np.random.default_rng(h * 97 + w).random((h, w, 3), dtype=np.float32)
    tp, st_, _ = run(image, chip=32, overlap=overlap, multiple=16, batch=64)
    check_plan(tp, 32, overlap, 16)
    # float32 accumulation: with overlap 31 of a 32 px chip a pixel sums ~30 chips, ~1e-6 relative error
    np.testing.assert_allclose(st_.probabilities(), image, rtol=1e-5)


@pytest.mark.parametrize("h, w", [
    (1, 1), (15, 17), (17, 15), (120, 120), (1, 1100), (1100, 1), (511, 513), (512, 512), (513, 511),
    (1000, 1000), (1100, 1000), (600, 15),
])
def test_identity_round_trip_512(h, w):
    image = np.random.default_rng(h * 10007 + w).random((h, w, 6), dtype=np.float32)
    tp, st_, shape = run(image, batch=8)
    check_plan(tp, contract.CHIP, 64, contract.CHIP_MULTIPLE)
    assert shape == (tp.chip_h, tp.chip_w, 6)
    np.testing.assert_allclose(st_.probabilities(), image[..., :3], rtol=1e-6)


@pytest.mark.parametrize("size, extent", [(1, 16), (15, 16), (16, 16), (17, 32), (120, 128), (500, 512),
                                          (511, 512), (512, 512), (513, 512), (1000, 512), (1100, 512)])
def test_chip_extent(size, extent):
    tp = tile.plan(size, 20)
    assert tp.chip_h == extent
    assert tp.chip_w == 32


@pytest.mark.parametrize("size, starts", [
    (512, (0,)), (513, (0, 1)), (1000, (0, 448, 488)), (1100, (0, 448, 588)), (960, (0, 448)),
])
def test_starts_hand_computed(size, starts):
    # chip 512, overlap 64 -> stride 448; the last chip sits flush with the edge
    assert tile.plan(size, size).rows == starts
    assert tile.plan(size, size).cols == starts


def test_plan_refuses_bad_overlap():
    with pytest.raises(ValueError):
        tile.plan(100, 100, chip=64, overlap=64)
    with pytest.raises(ValueError):
        tile.plan(100, 100, chip=64, overlap=-1)


def test_chips_hold_the_image_and_pad_small_axes():
    rng = np.random.default_rng(1)
    image = rng.random((20, 70, 2), dtype=np.float32)
    tp = tile.plan(20, 70, chip=32, overlap=8, multiple=16)
    assert (tp.chip_h, tp.chip_w) == (32, 32)
    c = tile.chips(image, tp, tp.positions)
    for k, (r, col) in enumerate(tp.positions):
        np.testing.assert_array_equal(c[k, :20], image[:, col:col + 32])
    # padding is by reflection, so padded rows repeat real pixels (never zeros that look like nodata)
    np.testing.assert_array_equal(c[0, 20], image[18, 0:32])


def test_chips_one_pixel_raster():
    image = np.array([[[0.25, 0.5, 0.75]]], dtype=np.float32)
    tp = tile.plan(1, 1)
    c = tile.chips(image, tp, tp.positions)
    assert c.shape == (1, 16, 16, 3)
    assert (c == image[0, 0]).all()


def test_stitcher_refuses_uncovered():
    tp = tile.plan(100, 100, chip=64, overlap=16)
    s = stitch.Stitcher(tp, 3)
    first = tp.positions[:1]
    s.add(np.ones((1, 64, 64, 3), np.float32), first)
    with pytest.raises(RuntimeError, match="no chip"):
        s.probabilities()


def test_stitch_blends_differing_chips_as_weighted_mean():
    # two chips, different constant answers: overlap pixels fall strictly between them and move
    # monotonically from the left chip's answer to the right chip's
    tp = tile.plan(16, 96, chip=64, overlap=32, multiple=16)
    assert tp.cols == (0, 32)
    s = stitch.Stitcher(tp, 3)
    s.add(np.zeros((1, 16, 64, 3), np.float32), [(0, 0)])
    s.add(np.ones((1, 16, 64, 3), np.float32), [(0, 32)])
    p = s.probabilities()[0, :, 0]
    assert (p[:32] == 0).all() and (p[64:] == 1).all()
    mid = p[32:64]
    assert ((mid > 0) & (mid < 1)).all()
    assert (np.diff(mid) > 0).all()
    np.testing.assert_allclose(mid + mid[::-1], 1.0, rtol=1e-6)  # symmetric ramps


def _edge_artefact(amplitude: float, reach: int):
    """A model whose answer is the input plus an artefact that grows towards the chip's edges
    (amplitude at the edge, fading to 0 at `reach` px in): what a net with zero padding does."""

    def model(chips: np.ndarray) -> np.ndarray:
        n_h, n_w = chips.shape[1:3]
        i, j = np.arange(n_h), np.arange(n_w)
        d = np.minimum(np.minimum(i, n_h - 1 - i)[:, None], np.minimum(j, n_w - 1 - j)[None, :])
        a = amplitude * np.maximum(0.0, 1.0 - d / reach)
        return (chips[..., :3] + a[None, :, :, None]).astype(np.float32)

    return model


def _hard_cut(image, model, chip, overlap):
    """Naive stitching for comparison: each chip overwrites what the previous ones wrote."""
    h, w = image.shape[:2]
    tp = tile.plan(h, w, chip=chip, overlap=overlap, multiple=16)
    out = np.zeros((h, w, 3), np.float32)
    for positions in tile.batches(tp, 4):
        for p, (r, c) in zip(model(tile.chips(image, tp, positions)), positions):
            hh, ww = min(tp.chip_h, h - r), min(tp.chip_w, w - c)
            out[r:r + hh, c:c + ww] = p[:hh, :ww]
    return out


def _max_jump(probs, margin):
    x = probs[..., 0]
    # the raster's own edges are seen by one chip only, so the artefact is genuinely there; look inside
    inner = (slice(margin, -margin), slice(margin, -margin))
    return max(np.abs(np.diff(x, axis=0))[inner].max(), np.abs(np.diff(x, axis=1))[inner].max())


@pytest.mark.parametrize("h, w, chip, overlap, reach", [
    (150, 170, 64, 16, 8), (150, 170, 64, 16, 16), (40, 300, 64, 32, 16), (600, 700, 512, 64, 32),
])
def test_no_seam_at_chip_boundaries(h, w, chip, overlap, reach):
    """What this shows: on a flat input, a model with an edge artefact of amplitude A makes the
    naive hard-cut mosaic jump by the full A between neighbouring pixels at every chip boundary;
    the overlap-blended mosaic never jumps by more than 2A/(overlap+1) anywhere inside the raster
    (the ramp gives a chip's edge pixel 1/(overlap+1) of the weight), i.e. the seam shrinks by a
    factor of about (overlap+1)/2."""
    amplitude = 0.3
    model = _edge_artefact(amplitude, reach)
    image = np.full((h, w, 3), 0.5, np.float32)
    hard = _hard_cut(image, model, chip, overlap)
    _, st_, _ = run(image, model=model, chip=chip, overlap=overlap, multiple=16)
    blended = st_.probabilities()
    assert _max_jump(hard, reach) >= 0.99 * amplitude  # the seam is there to be hidden
    assert _max_jump(blended, reach) <= 2 * amplitude / (overlap + 1) + 1e-6


def test_to_mask_argmax_and_nodata():
    probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]],
                      [[0.1, 0.1, 0.8], [0.4, 0.5, 0.1], [0.9, 0.05, 0.05]]], dtype=np.float32)
    invalid = np.array([[False, False, True], [False, True, False]])
    np.testing.assert_array_equal(stitch.to_mask(probs), [[0, 1, 2], [2, 1, 0]])
    mask = stitch.to_mask(probs, invalid)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 1, 255], [2, 255, 0]])
    assert contract.NODATA == 255 and (contract.CLEAR, contract.CLOUD, contract.SHADOW) == (0, 1, 2)


@pytest.mark.parametrize("mask, cloud, shadow", [
    ([[0, 1, 2, 255]], 1 / 3, 1 / 3),
    ([[1, 1, 1, 0], [255, 255, 255, 255]], 3 / 4, 0.0),
    ([[2, 0, 0, 0, 0]], 0.0, 1 / 5),
    ([[0, 0], [0, 0]], 0.0, 0.0),
    ([[255, 255], [255, 255]], 0.0, 0.0),  # all nodata: no valid pixel, no cover
    ([[1]], 1.0, 0.0),
])
def test_cover_fractions(mask, cloud, shadow):
    got = stitch.cover(np.array(mask, dtype=np.uint8))
    assert got == pytest.approx((cloud, shadow), abs=1e-12)
    assert all(isinstance(v, float) for v in got)


@pytest.mark.parametrize("h,w", [(512, 512), (700, 600), (300, 260), (1, 40)])
def test_chips_from_a_channels_last_view_equal_chips_from_a_copy(h, w):
    """The DN path cuts chips from np.moveaxis(bands-first) (copied band by band): same chips."""
    bands_first = np.random.default_rng(0).integers(0, 65535, (6, h, w)).astype(np.uint16)
    view = np.moveaxis(bands_first, 0, -1)
    tp = tile.plan(h, w)
    for pos in tile.batches(tp, 4):
        np.testing.assert_array_equal(tile.chips(view, tp, pos), tile.chips(np.ascontiguousarray(view), tp, pos))


def test_single_chip_stitch_is_the_chip_cropped():
    tp = tile.plan(300, 260)
    p = np.random.default_rng(1).random((1, tp.chip_h, tp.chip_w, 3), dtype=np.float32)
    s = stitch.Stitcher(tp, 3)
    s.add(p, tp.positions)
    np.testing.assert_array_equal(s.probabilities(), p[0, :300, :260])


def test_stitch_blends_uint8_probabilities_like_scaled_floats():
    tp = tile.plan(16, 96, chip=64, overlap=32, multiple=16)
    q = np.random.default_rng(2).integers(0, 256, (2, 16, 64, 3)).astype(np.uint8)
    a, b = stitch.Stitcher(tp, 3), stitch.Stitcher(tp, 3)
    a.add(q, tp.positions)
    b.add(q.astype(np.float32), tp.positions)
    np.testing.assert_array_equal(a.probabilities(), b.probabilities())


@pytest.mark.parametrize("hw, overlap", [((1000, 1300), 64), ((512, 700), 0), ((37, 900), 16), ((2100, 515), 64)])
@pytest.mark.parametrize("order", ["plan", "shuffled", "reversed"])
def test_row_stitcher_gives_the_stitchers_mask_bit_for_bit(hw, overlap, order):
    """Chips in any order and batch grouping: RowStitcher's mask is exactly to_mask(Stitcher's
    probabilities), while it never holds more float32 rows than the chips in flight need."""
    h, w = hw
    tp = tile.plan(h, w, overlap=overlap)
    rng = np.random.default_rng(h * w + overlap)
    chips = {pos: rng.random((tp.chip_h, tp.chip_w, 3), dtype=np.float32) for pos in tp.positions}
    positions = list(tp.positions)
    if order == "shuffled":
        rng.shuffle(positions)
    elif order == "reversed":
        positions.reverse()
    a, b = stitch.Stitcher(tp, 3), stitch.RowStitcher(tp, 3)
    invalid = rng.random((h, w)) < 0.01
    for i in range(0, len(positions), 3):
        batch = positions[i:i + 3]
        probs = np.stack([chips[p] for p in batch])
        a.add(probs, batch)
        b.add(probs, batch)
    np.testing.assert_array_equal(b.mask(invalid), stitch.to_mask(a.probabilities(), invalid))
    if order == "plan":  # in plan order the band stays about two chip rows high
        assert b.acc.shape[0] <= 2 * 2 * tp.chip_h


def test_row_stitcher_refuses_a_missing_or_repeated_chip():
    tp = tile.plan(600, 600, overlap=64)
    p = np.ones((1, tp.chip_h, tp.chip_w, 3), np.float32)
    s = stitch.RowStitcher(tp, 3)
    for pos in tp.positions[:-1]:
        s.add(p, [pos])
    with pytest.raises(RuntimeError, match="covered by no chip"):
        s.mask()
    with pytest.raises(RuntimeError, match="already complete"):
        s.add(p, [tp.positions[0]])


# -- cropping chips' classes instead of blending (the service's default, --stitch crop) ---------

@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 3000), chip=st.sampled_from([64, 512]), overlap_frac=st.floats(0, 0.45))
def test_crop_spans_tile_the_axis_and_keep_away_from_chip_edges(size, chip, overlap_frac):
    overlap = int(overlap_frac * chip)
    starts = tile._starts(size, chip, overlap)
    spans = stitch.crop_spans(starts, chip, size)
    assert spans[0][0] == 0 and spans[-1][1] == size
    for (lo, hi), (nlo, _) in zip(spans, spans[1:]):
        assert hi == nlo  # no gap, no overlap
    for s, (lo, hi) in zip(starts, spans):
        assert s <= lo < hi <= s + chip  # a chip answers only inside itself
        if lo > 0:  # at least half the overlap from the chip's edge where another chip took over
            assert lo - s >= overlap // 2
        if hi < size:
            assert s + chip - hi >= overlap // 2


def test_crop_stitcher_takes_each_pixel_from_the_chip_it_is_deepest_in():
    h, w = 1100, 700
    tp = tile.plan(h, w, overlap=64)
    st_ = stitch.CropStitcher(tp)
    for positions in tile.batches(tp, 3):  # each chip says its own index everywhere
        st_.add(np.stack([np.full((tp.chip_h, tp.chip_w), tp.positions.index(p), np.uint8) for p in positions]),
                positions)
    invalid = np.zeros((h, w), bool)
    invalid[0, 0] = True
    got = st_.mask(invalid)
    assert got[0, 0] == contract.NODATA
    rr, cc = np.mgrid[0:h, 0:w]
    depth = np.stack([np.minimum.reduce([rr - r, r + tp.chip_h - 1 - rr, cc - c, c + tp.chip_w - 1 - cc])
                      for r, c in tp.positions])  # px from the chip's nearest edge (negative: outside it)
    owner = np.where(invalid, 0, got).astype(int)
    mine = np.take_along_axis(depth, owner[None], 0)[0]
    inside = (rr > 0) | (cc > 0)
    # the owning chip covers the pixel, and no chip has it more than a pixel deeper (spans meet at integer midpoints)
    assert np.all(mine[inside] >= 0) and np.all(depth.max(axis=0)[inside] - mine[inside] <= 1)


def test_crop_stitcher_refuses_a_missing_or_repeated_chip():
    tp = tile.plan(600, 600, overlap=64)
    st_ = stitch.CropStitcher(tp)
    st_.add(np.zeros((1, tp.chip_h, tp.chip_w), np.uint8), tp.positions[:1])
    with pytest.raises(RuntimeError, match="covered by no chip"):
        st_.mask()
    with pytest.raises(RuntimeError, match="already in"):  # a repeat cannot stand in for a missing chip
        st_.add(np.zeros((1, tp.chip_h, tp.chip_w), np.uint8), tp.positions[:1])


# -- fitted plans: the service's chips, sized to the raster up to MAX_CHIP ---------------------------------------

@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 12000), max_chip=st.sampled_from([256, 512, 1024]),
       overlap=st.sampled_from([0, 32, 64, 100, 240, 1000]))
def test_fitted_axis_covers_with_the_overlap_on_the_pooling_grid(size, max_chip, overlap):
    if overlap > max_chip - contract.CHIP_MULTIPLE:
        with pytest.raises(ValueError):  # no room to step: refused, never an endless search
            tile.fitted(size, 7, max_chip, overlap)
        return
    tp = tile.fitted(size, 7, max_chip, overlap)
    m = contract.CHIP_MULTIPLE
    chip, rows = tp.chip_h, tp.rows
    assert chip % m == 0 and chip <= max(max_chip, -(-size // m) * m)
    assert rows[0] == 0 and all(r % m == 0 for r in rows)
    assert 0 <= rows[-1] + chip - size < m  # covers the axis, overhanging by at most 15 px
    assert all(0 < b - a <= chip - overlap for a, b in zip(rows, rows[1:]))  # distinct; share >= overlap px
    if size > max_chip and overlap % m == 0:  # the fewest chips of at most max_chip that can do it
        n = len(rows)
        assert (n - 1) * max_chip - (n - 2) * overlap < size


def test_fitted_chips_identity_model_gives_the_input_back():
    """Chips that overhang the raster's edge (padded) and cropped spans still give back every pixel exactly."""
    rng = np.random.default_rng(3)
    image = rng.random((1100, 2090, 4), dtype=np.float32)
    tp = tile.fitted(1100, 2090, 1024, 64)
    assert (tp.chip_h, tp.chip_w) == (592, 752)  # 2 x 3 chips
    cs = stitch.CropStitcher(tp)
    for pos in tile.batches(tp, 4, contract.BATCH_PIXELS):
        ch = tile.chips(image, tp, pos)
        assert ch.shape[0] * tp.chip_h * tp.chip_w <= contract.BATCH_PIXELS or ch.shape[0] == 1
        cs.add((ch[..., 0] * 200).astype(np.uint8), pos)
    assert np.array_equal(cs.mask(), (image[..., 0] * 200).astype(np.uint8))


def test_batches_by_pixels_never_less_than_one_chip():
    tp = tile.fitted(3000, 3000, 1024, 64)
    assert [len(b) for b in tile.batches(tp, 4, contract.BATCH_PIXELS)] == [1] * len(tp)
    tp = tile.fitted(1000, 1500, 512, 64)
    assert {len(b) for b in tile.batches(tp, 4, contract.BATCH_PIXELS)} <= {4, len(tp) % 4 or 4}


def test_fitted_refuses_a_bad_geometry():
    with pytest.raises(ValueError):
        tile.fitted(100, 100, 1000, 64)  # not a multiple of 16
    with pytest.raises(ValueError):
        tile.fitted(100, 100, 512, 512)
    with pytest.raises(ValueError):
        tile.fitted(2000, 2000, 1024, 1016)  # steps of less than 16 px: no plan on the grid
