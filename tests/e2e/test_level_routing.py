"""Processing level end to end: an L1C and an L2A file reach the model the routing table names for their level,
and the response says which level was read and how (real ModelServers on loopback, real GeoTIFFs).

The stack here reads its own routing table (CLOUDMASK_ROUTES) that sends 6-band L1C to baseline-6b and 6-band L2A to
cloudmask-6b, so both paths are exercised whatever the committed gate decided."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cloudmask import contract, samples
from cloudmask.supervisor import Stack

from test_service import grpc_infer, post_json, rest_infer, tif_bytes

pytestmark = pytest.mark.e2e

ROUTES = {"cloudmask": {"cloudmask-6b": {"L1C": "baseline-6b", "L2A": "cloudmask-6b", "unknown": "baseline-6b"},
                        "cloudmask-4b": {"L1C": "cloudmask-4b", "L2A": "cloudmask-4b", "unknown": "cloudmask-4b"}}}


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    d = tmp_path_factory.mktemp("routed")
    (d / "routes.json").write_text(json.dumps({"routes": ROUTES}))
    mp = pytest.MonkeyPatch()
    mp.setenv("CLOUDMASK_ROUTES", str(d / "routes.json"))  # inherited by the transformer process
    try:
        with Stack(http_port=0, grpc_port=0, log_dir=d / "logs") as s:
            yield s, d
    finally:
        mp.undo()


def test_l1c_and_l2a_reach_their_models(routed, tmp_path):
    stack, _ = routed
    l1c = samples.l1c_scene(tmp_path / "l1c.tif", bands=contract.BANDS_6, window=(400, 300, 256, 256))
    l2a = samples.l2a_patch(tmp_path / "l2a.tif", samples.BIGEARTHNET_SNOW)  # 12 bands, PROCESSING_LEVEL=Level-2A
    r = rest_infer(stack, l1c).get_response()["parameters"]
    assert (r["model"], r["level"], r["level_source"]) == ("baseline-6b", "L1C", "tags")
    r = rest_infer(stack, l2a).get_response()["parameters"]
    assert (r["model"], r["level"], r["level_source"]) == ("cloudmask-6b", "L2A", "tags")
    assert grpc_infer(stack, l2a)["model_version"].startswith("cloudmask-6b:")
    assert grpc_infer(stack, l1c)["model_version"].startswith("baseline-6b:")


def test_level_parameter_overrides_the_file(routed, tmp_path):
    stack, _ = routed
    l1c = samples.l1c_scene(tmp_path / "l1c.tif", bands=contract.BANDS_6, window=(400, 300, 256, 256))
    r = rest_infer(stack, l1c, params={"level": "L2A"}).get_response()["parameters"]
    assert (r["model"], r["level"], r["level_source"]) == ("cloudmask-6b", "L2A", "parameter")
    r = rest_infer(stack, l1c, params={"level": "unknown"}).get_response()["parameters"]
    assert (r["model"], r["level"]) == ("baseline-6b", "unknown")


def test_untagged_files_by_bands_radiometry_or_unknown(routed, tmp_path):
    stack, _ = routed
    rng = np.random.default_rng(0)
    dark = rng.integers(50, 900, size=(6, 64, 64)).astype(np.uint16)  # blue as dark as only surface reflectance is
    p = tmp_path / "dark.tif"
    p.write_bytes(tif_bytes(dark, descriptions=None))
    r = rest_infer(stack, p).get_response()["parameters"]
    assert (r["model"], r["level"], r["level_source"]) == ("cloudmask-6b", "L2A", "radiometry")
    bright = dark + np.uint16(800)  # the same with an atmosphere's worth of blue: the level cannot be told
    p.write_bytes(tif_bytes(bright, descriptions=None))
    r = rest_infer(stack, p).get_response()["parameters"]
    assert (r["model"], r["level"], r["level_source"]) == ("baseline-6b", "unknown", "none")


def test_bad_level_is_a_400(routed, tmp_path):
    stack, _ = routed
    l1c = samples.l1c_scene(tmp_path / "l1c.tif", bands=contract.BANDS_4, window=(400, 300, 64, 64))


    r = post_json(stack, l1c.read_bytes(), params={"level": "L3"})
    assert r.status_code == 400 and "level must be" in r.json()["error"]
