"""Export a trained Keras model as a versioned model folder: SavedModel + contract.json + model card."""

from __future__ import annotations

import json
from pathlib import Path

from cloudmask.contract import PREDICTOR_INPUT, PREDICTOR_OUTPUT, ModelContract, write_contract
from cloudmask.train import sources

METRICS_PLACEHOLDER = "TO BE FILLED BY `cloudmask evaluate` (measured numbers only)"


def export_savedmodel(model, out_dir: Path, n_bands: int) -> Path:
    """SavedModel whose serving_default maps reflectance [N,H,W,B] -> probabilities [N,H,W,3]."""
    import keras
    import tensorflow as tf

    out_dir = Path(out_dir)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(reflectance):
        return {PREDICTOR_OUTPUT: model(reflectance, training=False)}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec((None, None, None, n_bands), tf.float32, name=PREDICTOR_INPUT)],
    )
    archive.write_out(str(out_dir), verbose=False)
    return out_dir


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def training_sources() -> list[dict]:
    from cloudmask.train import realclouds

    return [{"source": k, "credit": v} for k, v in {**sources.CREDITS, **realclouds.CREDITS}.items()]


def real_cloud_lines(summary: dict) -> list[str]:
    """The card's account of the real cloudy acquisitions: per source, how many, labelled pixels per class, and how
    often each label source agreed with the built label where it said something (cloudmask.train.realclouds)."""
    lines = ["- Real cloudy acquisitions with labels built where independent sources agree (cloudmask.train."
             "realclouds; unlabelled pixels are ignored by the loss). Per source (\"held out\": never trained on, "
             "used to pick the epoch):", "",
             "  | source | acquisitions (with cloud) | cloud px | shadow px | clear px | ignored | agreement of each "
             "source with the built label |", "  |---|---:|---:|---:|---:|---:|---|"]
    for name, v in summary.items():
        agree = ", ".join(f"{k} {a['agreed'] / a['said']:.2f}" for k, a in v["votes"].items() if a["said"])
        lines.append(f"  | {name} | {v['acquisitions']} ({v['cloudy_acquisitions']}) | {v['cloud']:,} | "
                     f"{v['shadow']:,} | {v['clear']:,} | {v['ignored']:,} | {agree or 'no consensus'} |")
    lines.append("")
    return lines


def write_model_card(model_dir: Path, contract: ModelContract, provenance: dict) -> None:
    model_dir = Path(model_dir)
    card = {
        "name": contract.name,
        "version": provenance.get("version", "1"),
        "architecture": provenance.get("architecture"),
        "bands": list(contract.bands),
        "input": {"tensor": contract.input_name, "dtype": "float32", "shape": ["N", "H", "W", contract.n_bands],
                  "scaling": "reflectance = (DN + offset) / 10000, clipped to 0..1; offset 0 for L1C and for L2A before "
                             "processing baseline 04.00, -1000 (BOA_ADD_OFFSET) for L2A from baseline 04.00",
                  "spatial": "H and W multiples of 16; trained at 10 m"},
        "output": {"tensor": contract.output_name, "dtype": "float32", "shape": ["N", "H", "W", 3],
                   "classes": list(contract.classes)},
        "levels": ["L2A (surface reflectance)", "L1C (top-of-atmosphere reflectance)"],
        "training_data": training_sources(),
        "training": provenance,
        "validation_data_policy": "../shared/data/labelled is never read by training (the loaders refuse it); model "
                                  "selection (best epoch): " + str(provenance.get("selection")),
        "metrics": METRICS_PLACEHOLDER,
    }
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [
        f"# {contract.name} (version {card['version']})",
        "",
        f"Cloud and cloud-shadow segmentation of Sentinel-2 reflectance: {contract.description}.",
        "",
        "## Contract",
        f"- Input `{contract.input_name}`: float32 [N, H, W, {contract.n_bands}], bands {', '.join(contract.bands)} "
        "(in this order), H and W multiples of 16, 10 m.",
        f"- Scaling: {card['input']['scaling']}.",
        f"- Output `{contract.output_name}`: float32 [N, H, W, 3] softmax over {', '.join(contract.classes)}.",
        "- Levels: L2A surface reflectance (main) and L1C top-of-atmosphere reflectance.",
        "",
        "## Model",
        f"- {provenance.get('architecture')}; {provenance.get('params')} parameters; "
        f"{provenance.get('size_bytes')} bytes on disk (SavedModel + files).",
        "",
        "## Training data (all real Sentinel-2 imagery, read in place from ../shared/data, never copied)",
        "- Clear-sky scenes with synthetic clouds and shadows composited on them (exact labels): numpy reimplementation "
        "of the SatelliteCloudGenerator method (Czerkawski et al. 2023, Remote Sensing 15(17):4138; PyPI "
        "`satellite-cloud-generator`), see cloudmask/train/synth.py for thresholds.",
        *(real_cloud_lines(provenance["real_clouds"]) if provenance.get("real_clouds") else [
            "- Real cloudy scenes with confident (max prob >= "
            f"{provenance.get('teacher_min_conf')}) pseudo-labels from the ukis-csmask ONNX models (Apache-2.0); "
            "other pixels ignored by the loss."]),
        "- Augmentations: rot90/flips, illumination gain, per-band gain/offset, band noise, L2A<->L1C path-radiance "
        "shift, +0.1 BOA offset mistakes; hard negatives (clear crops without cloud, snow patch oversampled, water).",
        "",
        "Sources and licences:",
        *[f"- {s['source']}: {s['credit']}" for s in card["training_data"]],
        "",
        "Validation data (../shared/data/labelled) was never trained on, and the epoch kept is the best on a held-out "
        "synthetic split of the clear scenes. Any other choice made after seeing validation scores (a recipe change, "
        "which of several runs to serve) is stated in the version notes below.",
        "",
        "## Training run",
        "- Training command(s), in order (a resumed run continues the same checkpoint and schedule):",
        *[f"  - `{c}`" for c in provenance.get("commands") or [provenance.get("command")]],
        f"- Seed {provenance.get('seed')}; epochs run {provenance.get('epochs_run')} x {provenance.get('steps_per_epoch')} "
        f"steps, batch {provenance.get('batch')}, chip {provenance.get('chip')}; best epoch {provenance.get('best_epoch')} "
        f"(held-out val loss {provenance.get('best_val_loss')}).",
        f"- Training wall time {provenance.get('wall_time_s')} s (all runs together) on {provenance.get('device')}.",
        *([f"- Fine-tuned from the weights of `{provenance['init_from']}` (fresh optimizer and LR schedule)."]
          if provenance.get("init_from") else []),
        "",
        *([provenance["recipe_notes"], ""] if provenance.get("recipe_notes") else []),
        "## Measured metrics",
        "",
        f"{METRICS_PLACEHOLDER}. No numbers are given here until they are measured.",
        "",
    ]
    (model_dir / "MODEL_CARD.md").write_text("\n".join(lines))


def export_model(model, contract: ModelContract, export_root: Path, version: str, provenance: dict) -> Path:
    model_dir = Path(export_root) / contract.name / str(version)
    if model_dir.exists():
        import shutil

        shutil.rmtree(model_dir)
    export_savedmodel(model, model_dir, contract.n_bands)
    prov = {**provenance, "version": str(version), "params": int(model.count_params())}
    write_contract(model_dir, contract, version=str(version), extra={"training": {
        k: prov.get(k) for k in ("command", "commands", "seed", "epochs_run", "best_epoch", "wall_time_s", "git_commit")}})
    write_model_card(model_dir, contract, prov)
    prov["size_bytes"] = dir_size(model_dir)  # includes the card itself (rewritten with a few bytes more)
    write_model_card(model_dir, contract, prov)
    return model_dir
