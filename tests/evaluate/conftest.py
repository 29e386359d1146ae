"""Fixtures of the evaluation tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cloudmask import contract

VEG = np.array([400, 700, 400, 3500, 2000, 1000], np.uint16)  # DN: vegetation
CLOUD = np.array([6000, 6000, 6000, 6500, 5000, 4000], np.uint16)  # bright, white
SHADOW = np.array([200, 300, 250, 800, 600, 300], np.uint16)  # dark in NIR and SWIR


@pytest.fixture
def labelled_dir(write_geotiff, tmp_path):
    """labelled_dir(shadow=True, meta=None, dtype=uint16, tags=None, folder='myscene') -> a real scene folder in
    tmp_path: a 64x64 6-band GeoTIFF (band descriptions B02..B12, DN, nodata 0) + label.tif [+ scene.json].
    Cloud block rows 8-23, dark shadow block rows 40-55 (labelled 2 when `shadow`, else 0), cols 8-39;
    column 63 is nodata (all bands 0); label row 0 cols 0-3 are 255 (not scored). `.veg_dn` = the ground DN."""

    def make(shadow=True, meta=None, dtype=np.uint16, tags=None, folder="myscene"):
        img = np.broadcast_to(VEG[:, None, None], (6, 64, 64)).copy()
        img[:, 8:24, 8:40] = CLOUD[:, None, None]
        img[:, 40:56, 8:40] = SHADOW[:, None, None]
        img[:, :, 63] = 0
        label = np.zeros((1, 64, 64), np.uint8)
        label[0, 8:24, 8:40] = 1
        if shadow:
            label[0, 40:56, 8:40] = 2
        label[0, 0, :4] = 255
        d = tmp_path / folder
        d.mkdir()
        write_geotiff(img.astype(dtype), name=f"{folder}/image.tif", descriptions=list(contract.BANDS_6), nodata=0,
                      tags=tags)
        write_geotiff(label, name=f"{folder}/label.tif")
        if meta is not None:
            (d / "scene.json").write_text(json.dumps(meta))
        return d

    make.veg_dn = VEG
    return make
