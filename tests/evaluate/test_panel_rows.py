"""A scene's panel shows the served (newest) version of our widest model, one baseline and the teacher variant."""

import types

import numpy as np

from cloudmask import contract
from cloudmask.evaluate.candidates import Candidate
from cloudmask.evaluate.panels import panel_rows


def _c(name, kind, bands, version="", level=None, cloud_only=False):
    return Candidate(name, kind, bands, load=lambda: None, level=level, cloud_only=cloud_only, version=version)


def test_newest_widest_ours_then_baseline_then_teacher():
    scene = types.SimpleNamespace(name="s", level="L1C")
    cands = [_c("cloudmask-4b v3", "ours", contract.BANDS_4, "3"), _c("cloudmask-6b v2", "ours", contract.BANDS_6, "2"),
             _c("cloudmask-6b v3", "ours", contract.BANDS_6, "3"), _c("baseline-6b v1", "baseline", contract.BANDS_6, "1"),
             _c("DL-L8S2-UV 6b", "peer", contract.BANDS_6, "x.hdf5", "L1C", cloud_only=True),
             _c("ukis-csmask 6b L2A", "peer", contract.BANDS_6, "model_6b_l2a", "L2A"),
             _c("ukis-csmask 6b L1C", "peer", contract.BANDS_6, "model_6b_l1c", "L1C")]
    masks = {(c.name, "s"): np.full((2, 2), i, np.uint8) for i, c in enumerate(cands)}
    assert [n for n, _ in panel_rows(scene, cands, masks)] == ["cloudmask-6b v3", "baseline-6b v1", "ukis-csmask 6b L1C"]
    # a 4-band scene has no 6-band masks: the 4-band net is shown
    masks4 = {k: v for k, v in masks.items() if "6b" not in k[0]}
    assert [n for n, _ in panel_rows(scene, cands, masks4)][0] == "cloudmask-4b v3"
