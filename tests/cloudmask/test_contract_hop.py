"""The compact hop tensors' arithmetic (cloudmask.contract): the predictor's scaling of UINT16 DN
equals the transformer's FP32 scaling bit for bit, its classes equal argmax, quantise rounds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cloudmask import contract
from cloudmask.raster import scale as scale_ops


@pytest.mark.parametrize("scale,offset", [(10000, 0), (10000, -1000), (5000.5, 12.0), (1.0, 0.0), (3.0, 7.25),
                                          (10000, 1e-3), (65535, -65535)])
def test_dn_to_reflectance_is_bit_identical_to_the_fp32_path(scale, offset):
    rng = np.random.default_rng(0)
    dn = rng.integers(0, 65536, (7, 33, 5)).astype(np.uint16)  # (bands, H, W) as decoded
    dn[:, 0, 0] = [0, 1, 999, 1000, 10000, 10001, 65535]
    fp32 = scale_ops.to_reflectance(dn, scale, offset, (0.0, 1.0))  # what the transformer sent before
    got = contract.dn_to_reflectance(np.moveaxis(dn, 0, -1), scale, offset, (0.0, 1.0))
    assert got.dtype == np.float32 and got.shape == fp32.shape
    np.testing.assert_array_equal(got.view(np.uint32), fp32.view(np.uint32))
    inplace = np.moveaxis(dn, 0, -1).astype(np.float32)
    contract.reflectance_inplace(inplace, scale, offset, (0.0, 1.0))
    np.testing.assert_array_equal(inplace.view(np.uint32), got.view(np.uint32))


def test_dn_to_reflectance_uint8_and_value_range():
    dn = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    got = contract.dn_to_reflectance(dn, 100.0, -10.0, (0.1, 0.6))
    want = np.clip((dn.astype(np.float32) - 10) * np.float32(1 / 100), 0.1, 0.6)
    np.testing.assert_array_equal(got, want)


def _old_classes(probs):  # the transformer's argmax before the predictor could compute it
    p0, p1, p2 = probs[..., 0], probs[..., 1], probs[..., 2]
    mask = (p1 > p0).astype(np.uint8)
    mask[p2 > np.maximum(p0, p1)] = 2
    return mask


def test_classes_is_argmax_with_ties_to_the_lower_class():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 40, 50, 3), dtype=np.float32)
    probs[0, 0, :6] = [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1], [0, 1, 0]]
    probs[1, 0, :3] = [[np.nan, 0.5, 0.2], [0.2, np.nan, 0.1], [0.1, 0.2, np.nan]]
    got = contract.classes(probs)
    assert got.dtype == np.uint8 and got.shape == probs.shape[:-1]
    np.testing.assert_array_equal(got, _old_classes(probs))  # NaN included: the same comparisons
    finite = ~np.isnan(probs).any(-1)
    np.testing.assert_array_equal(got[finite], np.argmax(probs, axis=-1)[finite])
    np.testing.assert_array_equal(got[0, 0, :6], [0, 1, 0, 0, 2, 1])


def test_classes_of_other_class_counts_uses_argmax():
    probs = np.random.default_rng(2).random((5, 7, 4), dtype=np.float32)
    np.testing.assert_array_equal(contract.classes(probs), np.argmax(probs, -1))


def test_quantise_rounds_to_255ths_and_keeps_argmax_mostly():
    probs = np.array([0.0, 1.0, 0.5, 1 / 255, 0.5 / 255, 0.999, 1.0000001, -1e-7], np.float32)
    np.testing.assert_array_equal(contract.quantise(probs), [0, 255, 128, 1, 0, 255, 255, 0])
    p = np.random.default_rng(3).dirichlet((1, 1, 1), size=(64, 64)).astype(np.float32)
    q = contract.quantise(p)
    assert q.dtype == np.uint8 and np.abs(q / 255.0 - p).max() <= 0.5 / 255 + 1e-7


def test_tune_malloc_applies_in_a_fresh_process_unless_the_environment_says_otherwise():
    code = "from cloudmask.alloc import tune_malloc; print(tune_malloc())"
    env_free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
    assert env_free.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")
    env_set = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path),
                                  "MALLOC_MMAP_THRESHOLD_": "131072"})
    assert env_set.stdout.strip() == "False"
