"""A served U-Net joined with the spectral cloud test: cloud = the higher of the two cloud probabilities.

Why: on held-out scenes the U-Nets' failure is missed cloud (issue 10: a 6-band net marked only the bright cores of
cumulus that the spectral baseline found whole), while the baseline's failure is elsewhere (shadow on dark ground,
thin cloud). Taking the cloud probability as max(net, test) keeps every cloud either finds; the net's clear and
shadow probabilities are rescaled to share what is left (so the three still sum to 1, and where the test does
not fire the output is the net's, unchanged). The shadow decision stays the net's: the baseline's shadow test is
what it does worst (3.7-7.1 % false shadow on clear ground, `cloudmask evaluate`).

Measured before choosing (`cloudmask evaluate`, models/ of this commit; the max rule beat a 50/50 and a 70/30 mean
of the two nets' probabilities on every cloud score below, and it was chosen on the held-out real site and the
per-source agreement as much as on the labelled scenes):
| | scg cloud (L1C, human) | Chifunfu cloud (L2A, human) | held-out site cloud (built labels) | clear-ground false cloud |
|---|---|---|---|---|
| cloudmask-6b v7 / with the test | 0.680 / 0.715 | n/a | 0.932 / 0.932 | 0.97 % / 1.09 % |
| cloudmask-4b v3 / with the test | 0.630 / 0.663 | 0.896 / 0.896 | 0.795 / 0.831 | 0.67 % / 0.87 % |

    python -m predictor.union models/cloudmask-6b/7 --version 8 [--out models]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from cloudmask import contract

from . import baseline

RULE = ("cloud = max(net cloud, spectral cloud test); clear and shadow = the net's, rescaled by "
        "(1 - cloud) / (1 - net cloud)")


def build(net_dir: Path | str, model: contract.ModelContract):
    """A tf.Module whose serve(reflectance) gives the union's probabilities; the net's SavedModel inside."""
    import tensorflow as tf

    net = tf.saved_model.load(str(net_dir))
    fn = net.signatures["serving_default"]
    (in_key,) = fn.structured_input_signature[1].keys()
    (out_key,) = fn.structured_outputs.keys()

    class Union(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = net  # tracked: re-saved with the union

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, model.n_bands], tf.float32,
                                                    name=model.input_name)])
        def serve(self, x):
            p = self.net.signatures["serving_default"](**{in_key: x})[out_key]
            net_cloud = p[..., 1]
            cloud = tf.maximum(net_cloud, baseline.cloud_test(tf, x, model.bands))
            k = (1.0 - cloud) / tf.maximum(1.0 - net_cloud, 1e-6)
            return {model.output_name: tf.stack([p[..., 0] * k, cloud, p[..., 2] * k], axis=-1)}

    return Union()


def export(net_dir: Path | str, out_root: Path | str, version: str) -> Path:
    """models/<name>/<version>: the union SavedModel, its contract (the net's, with what it was built from) and the
    net's model card with a note on top; `cloudmask evaluate --update-cards` fills the card's metrics."""
    import tensorflow as tf

    net_dir = Path(net_dir)
    model, raw = contract.read_contract(net_dir)
    out = Path(out_root) / model.name / str(version)
    if out.exists():
        shutil.rmtree(out)
    module = build(net_dir, model)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    built_from = {"net": f"{model.name} v{raw.get('version')}", "rule": RULE, "cloud_test": "predictor/baseline.py"}
    contract.write_contract(out, model, str(version), extra={"training": raw.get("training"),
                                                             "union": built_from})
    note = (f"Version {version} is {model.name} v{raw.get('version')}'s network unchanged, joined with the spectral "
            f"cloud test of the baselines (`predictor/union.py`): {RULE}. No training; why and what it measured: the "
            "module's docstring and the metrics below.")
    card_json = net_dir / "model_card.json"
    if card_json.is_file():
        card = json.loads(card_json.read_text())
        card.update(version=str(version), union=built_from, architecture=f"{card.get('architecture')}; + {RULE}")
        (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    card_md = net_dir / "MODEL_CARD.md"
    if card_md.is_file():
        lines = card_md.read_text().splitlines()
        lines[0] = f"# {model.name} (version {version})"
        (out / "MODEL_CARD.md").write_text("\n".join([lines[0], "", note, *lines[1:]]) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("net", type=Path, help="the U-Net's model folder, e.g. models/cloudmask-6b/7")
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    a = ap.parse_args(argv)
    print(export(a.net, a.out, a.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
