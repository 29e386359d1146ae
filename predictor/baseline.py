"""The spectral-test baseline: a transparent, rule-based classifier exported with the nets' contract.

It stays as the yardstick the trained U-Nets are compared against. Tests, per pixel, on
reflectance (soft thresholds through a sigmoid so the output is a probability-like score that
blends across chip overlaps like the nets' does):

cloud  = bright (mean visible > 0.2, in the spirit of Fmask's basic test)
         AND white (Fmask whiteness: sum |band - mean| / mean over visible < 0.7)
         AND hazy (HOT = blue - 0.5 red - 0.08 > 0, Zhang et al. 2002)
         AND (6-band) not snow (NDSI = (green - SWIR1)/(green + SWIR1) < 0.4; clouds stay bright in SWIR1)
shadow = dark NIR (< 0.15) AND (6-band) dark SWIR1 (< 0.12) AND not water (NDWI = (green - NIR)/(green + NIR) < 0.1)
         AND not cloud.
Thresholds are textbook values (Zhu & Woodcock 2012, Fmask), not fitted to any data here.
"""

from __future__ import annotations

from pathlib import Path

from cloudmask import contract


def _soft(tf, x, threshold, width, above=True):
    z = (x - threshold) / width
    return tf.sigmoid(z if above else -z)


def cloud_test(tf, x, bands):
    """The cloud score of the tests above, 0..1 per pixel, on reflectance x [..., len(bands)] in `bands` order."""
    idx = {b: i for i, b in enumerate(bands)}
    eps = 1e-6
    blue, green, red = (x[..., idx[b]] for b in ("B02", "B03", "B04"))
    vis = (blue + green + red) / 3.0
    whiteness = (tf.abs(blue - vis) + tf.abs(green - vis) + tf.abs(red - vis)) / (vis + eps)
    hot = blue - 0.5 * red - 0.08
    cloud = _soft(tf, vis, 0.2, 0.03) * _soft(tf, whiteness, 0.7, 0.1, above=False) * _soft(tf, hot, 0.0, 0.02)
    if "B11" in idx:
        swir1 = x[..., idx["B11"]]
        ndsi = (green - swir1) / (green + swir1 + eps)
        cloud = cloud * _soft(tf, ndsi, 0.4, 0.05, above=False)
    return cloud


def build(model: contract.ModelContract):
    import tensorflow as tf

    idx = {b: i for i, b in enumerate(model.bands)}
    has_swir = "B11" in idx

    class SpectralTests(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, model.n_bands], tf.float32,
                                                    name=model.input_name)])
        def serve(self, x):
            eps = 1e-6
            green, nir = x[..., idx["B03"]], x[..., idx["B08"]]
            ndwi = (green - nir) / (green + nir + eps)
            cloud = cloud_test(tf, x, model.bands)
            dark = _soft(tf, nir, 0.15, 0.02, above=False)
            if has_swir:
                dark = dark * _soft(tf, x[..., idx["B11"]], 0.12, 0.02, above=False)
            shadow = (1.0 - cloud) * dark * _soft(tf, ndwi, 0.1, 0.05, above=False)
            clear = 1.0 - cloud - shadow
            return {"output_0": tf.stack([clear, cloud, shadow], axis=-1)}

    return SpectralTests()


def export(model: contract.ModelContract, out_dir: Path | str, version: str = "1") -> Path:
    import tensorflow as tf

    out = Path(out_dir) / model.name / version
    out.mkdir(parents=True, exist_ok=True)
    module = build(model)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    contract.write_contract(out, model, version, extra={
        "kind": "spectral-test baseline",
        "rules": (__doc__ or "").strip(),
    })
    return out


if __name__ == "__main__":  # python -m predictor.baseline [ROOT]: re-export both baselines
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "models")
    for m in (contract.BASELINE_6B, contract.BASELINE_4B):
        print(export(m, root))
