"""The cloudmask U-Net: a small, fast, fully convolutional net for Sentinel-2 reflectance.

Design (chosen for CPU latency, see MODEL_CARD): a stride-2 stem so the encoder/decoder work at
half resolution, depthwise-separable convolutions, four downsamplings in all (stem + 3 pools, so
H and W must be multiples of 16), and a full-resolution skip from the input so cloud edges stay
sharp after the final (learned, transposed-conv) upsampling. Decoder upsampling is nearest-neighbour:
Keras' bilinear UpSampling2D cannot be traced with unknown H, W for the SavedModel signature. Output: softmax over (clear, cloud, shadow).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from cloudmask.contract import CHIP_MULTIPLE, CLASS_NAMES

DEFAULT_WIDTHS = (16, 32, 48, 64)


def _sep_block(x, filters: int, name: str):
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sep1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sep2")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    return layers.ReLU(name=f"{name}_relu2")(x)


def build_unet(n_bands: int, widths: tuple[int, ...] = DEFAULT_WIDTHS, name: str = "cloudmask_unet") -> keras.Model:
    """U-Net for (None, None, n_bands) reflectance 0..1 -> (None, None, 3) class probabilities.

    `widths` are the filters at 1/2, 1/4, 1/8 and 1/16 resolution.
    """
    assert len(widths) == 4, "four levels: stem at 1/2 plus three poolings gives the contract's multiple of 16"
    inp = keras.Input((None, None, n_bands), name="reflectance")
    # Reflectance of land is mostly 0..0.4 and of clouds 0.3..1: centre it so the first layers start near zero mean.
    x0 = layers.Rescaling(scale=4.0, offset=-1.0, name="scale")(inp)

    # Full-resolution features for the final head (cheap: a 3x3 conv with few filters).
    full = layers.Conv2D(8, 3, padding="same", activation="relu", name="full_conv")(x0)

    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem")(x0)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    e1 = _sep_block(x, widths[0], "enc1")  # 1/2
    e2 = _sep_block(layers.MaxPooling2D(2, name="pool1")(e1), widths[1], "enc2")  # 1/4
    e3 = _sep_block(layers.MaxPooling2D(2, name="pool2")(e2), widths[2], "enc3")  # 1/8
    b = _sep_block(layers.MaxPooling2D(2, name="pool3")(e3), widths[3], "bott")  # 1/16

    d = b
    for lvl, skip, f in ((3, e3, widths[2]), (2, e2, widths[1]), (1, e1, widths[0])):
        d = layers.UpSampling2D(2, interpolation="nearest", name=f"up{lvl}")(d)
        d = layers.Concatenate(name=f"cat{lvl}")([d, skip])
        d = _sep_block(d, f, f"dec{lvl}")

    d = layers.Conv2DTranspose(16, 2, strides=2, activation="relu", name="up0")(d)
    d = layers.Concatenate(name="cat0")([d, full])
    d = layers.Conv2D(16, 1, activation="relu", name="head_conv")(d)
    out = layers.Conv2D(len(CLASS_NAMES), 1, activation="softmax", dtype="float32", name="probabilities")(d)
    return keras.Model(inp, out, name=name)


def widths_of(model: keras.Model) -> tuple[int, ...]:
    """The `widths` a model was built with, read back from its layers."""
    return tuple(int(model.get_layer(n).filters) for n in ("stem", "enc2_sep1", "enc3_sep1", "bott_sep1"))


def load_savedmodel_weights(model: keras.Model, path) -> None:
    """Set `model`'s weights from an exported SavedModel of the same architecture (models/<name>/<version>/).

    The export keeps each variable under its layer path, so weights are matched by name; a missing or differently
    shaped weight (another width or band count) is an error, not a silent partial load.
    """
    import tensorflow as tf

    saved = {v.name.split(":")[0]: v for v in tf.saved_model.load(str(path)).variables}
    mine = {w.path: w for w in model.weights}
    if set(saved) != set(mine):
        raise ValueError(f"{path}: not the same architecture (weights only there: {sorted(set(saved) - set(mine))[:4]},"
                         f" only here: {sorted(set(mine) - set(saved))[:4]})")
    for name, w in mine.items():
        if tuple(saved[name].shape) != tuple(w.shape):
            raise ValueError(f"{path}: {name} has shape {tuple(saved[name].shape)}, this net {tuple(w.shape)}")
        w.assign(saved[name].numpy())


# The only layers that read the input bands; every other weight has the same shape whatever the band count.
INPUT_LAYERS = ("full_conv", "stem")


def transfer_weights(src: keras.Model, src_bands: tuple[str, ...], dst: keras.Model,
                     dst_bands: tuple[str, ...]) -> None:
    """Copy `src`'s weights into `dst`, matching input channels by band name; bands `src` lacks get zero kernels.

    So a 6-band net started from the 4-band one computes exactly what the 4-band net does until training gives
    the SWIR kernels weight (v4 of cloudmask-6b: the 4-band net learnt from more scenes and transfers better).
    """
    missing = [b for b in src_bands if b not in dst_bands]
    if missing:
        raise ValueError(f"target lacks bands {missing} of the source")
    for layer in dst.layers:
        w_src = src.get_layer(layer.name).get_weights()
        if layer.name in INPUT_LAYERS:
            kernel = np.zeros(layer.get_weights()[0].shape, np.float32)
            for i, b in enumerate(src_bands):
                kernel[:, :, dst_bands.index(b), :] = w_src[0][:, :, i, :]
            w_src = [kernel, *w_src[1:]]
        layer.set_weights(w_src)


def check_shape(h: int, w: int) -> None:
    if h % CHIP_MULTIPLE or w % CHIP_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {CHIP_MULTIPLE}, got {h}x{w}")
