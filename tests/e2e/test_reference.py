"""`cloudmask predict URL,...|ITEM` against the real service (two ModelServer processes on loopback) and a real
loopback HTTP server with range requests serving Sentinel-2 COGs (one per band, at 10 and 20 m) and STAC items:
the client reads block by block, the mask is a valid COG, and it equals the mask of the same pixels from a file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from cloudmask import samples
from cloudmask.raster import cog

from rangeserver import RangeServer
from stacitems import SIX, build_tree

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "cloudmask.cli", "predict"]
WINDOW = "200,100,1400,1300"  # 2 x 2 blocks of 1024 with margins, 20 m bands warped onto the 10 m grid


@pytest.fixture(scope="module")
def cogs(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("served"))
    with RangeServer(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def local_mask(stack, tmp_path_factory):
    """The mask of the same six bands stacked into a local file, through the same blocks: what a reference must
    give."""
    d = tmp_path_factory.mktemp("local")
    scene = samples.l1c_scene(d / "six.tif", bands=SIX)
    out = d / "mask.tif"
    r = subprocess.run(CLI + [str(scene), "--out", str(out), "--url", stack.url, "--window", WINDOW, "--block",
                              "1024", "--level", "L1C", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with rasterio.open(out) as m:
        return m.read(1), m.transform, m.crs


def predict(stack, ref, out, *extra):
    r = subprocess.run(CLI + [ref, "--out", str(out), "--url", stack.url, "--window", WINDOW, "--block", "1024",
                              "--json", *extra], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert cog.problems(out) == []
    with rasterio.open(out) as m:
        assert m.nodata == 255 and m.overviews(1)
        return json.loads(r.stdout), m.read(1), m.transform, m.crs


def test_one_url_per_band_read_here_block_by_block(stack, cogs, local_mask, tmp_path):
    urls = ",".join(cogs.url(f"cogs/{b}.tif") for b in SIX)
    summary, mask, transform, crs = predict(stack, urls, tmp_path / "m.tif", "--level", "L1C")
    assert (summary["width"], summary["height"]) == (1400, 1300)
    want, want_transform, want_crs = local_mask
    assert (transform, crs) == (want_transform, want_crs)
    assert np.array_equal(mask, want)
    # range reads of the window's tiles only, never a whole file
    assert all(rng for method, _, rng in cogs.requests if method == "GET")


def test_a_stac_item_by_url_and_as_a_file(stack, cogs, local_mask, tmp_path):
    """Planetary Computer naming; the level (L1C) comes from the item; the item's other 7 bands are not read."""
    cogs.served.clear()
    _, by_url, _, _ = predict(stack, cogs.url("items/planetary.json"), tmp_path / "a.tif")
    assert np.array_equal(by_url, local_mask[0])
    assert {p for p in cogs.served if p.startswith("/cogs/")} == {f"/cogs/{b}.tif" for b in SIX}
    item = json.loads(cogs.root.joinpath("items", "planetary.json").read_text())
    for asset in item["assets"].values():
        asset["href"] = cogs.url(asset["href"].replace("../", ""))
    f = tmp_path / "item.json"
    f.write_text(json.dumps(item))
    _, from_file, _, _ = predict(stack, str(f), tmp_path / "b.tif")
    assert np.array_equal(from_file, local_mask[0])


def test_a_local_scene_mask_is_a_cog_too(local_mask, stack, tmp_path):
    scene = samples.l1c_scene(tmp_path / "s.tif", bands=SIX, window=(0, 0, 700, 600))
    r = subprocess.run(CLI + [str(scene), "--out", str(tmp_path / "m.tif"), "--url", stack.url],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert cog.problems(tmp_path / "m.tif") == []
