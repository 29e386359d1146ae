"""The `cloudmask evaluate` command (cloudmask.evaluate says what it does): flags, the run, the files it writes."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from cloudmask import contract
from cloudmask.evaluate import candidates as candidate_mod
from cloudmask.evaluate import labelled as scene_mod
from cloudmask.evaluate import report
from cloudmask.evaluate import run as run_mod

REPO = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scene", action="append", type=Path, metavar="DIR", default=None,
                   help="a labelled scene folder (image GeoTIFF + label.tif [+ scene.json]); repeatable. "
                        "Default: the validation scenes in $CLOUDMASK_SHARED/data/labelled")
    p.add_argument("--model-dir", type=Path, default=REPO / "models", help="models to score (default: %(default)s)")
    p.add_argument("--models", default=None, help="comma-separated model names to keep (default: all found)")
    p.add_argument("--no-peers", action="store_true", help="skip ukis-csmask and DL-L8S2-UV")
    p.add_argument("--no-dl-l8s2-uv", action="store_true", help="skip the optional DL-L8S2-UV peer")
    p.add_argument("--out", type=Path, default=Path("out/evaluate"), help="metrics.json and PNG panels go here")
    p.add_argument("--chip", type=int, default=contract.MAX_CHIP,
                   help="largest chip side, as the transformer's --max_chip (default %(default)s): chips are sized "
                        "to each scene up to it, on the nets' 16 px grid")
    p.add_argument("--overlap", type=int, default=contract.OVERLAP)
    p.add_argument("--batch", type=int, default=4, help="chips per predictor call")
    p.add_argument("--no-panels", action="store_true")
    p.add_argument("--no-clear", action="store_true",
                   help="skip the false-alarm check on held-out clear ground (cloudmask.evaluate.clear)")
    p.add_argument("--update-cards", action="store_true",
                   help="write the measured metrics into the `## Measured metrics` section of each scored U-Net's "
                        "MODEL_CARD.md and the `metrics` key of its model_card.json")
    p.add_argument("--no-heldout", action="store_true",
                   help="skip the held-out real acquisitions with built labels (cloudmask.evaluate.heldout)")
    p.add_argument("--gate", type=Path, default=None, metavar="ROUTES_JSON",
                   help="decide which model serves which band set and level from these metrics (cloudmask.evaluate."
                        "gate) and write the routing table, e.g. cloudmask/routes.json")
    p.add_argument("--scg-scale", type=float, default=scene_mod.SCG_SCALE,
                   help="divisor that turns the scg scene's values into reflectance (default %(default)s, decided "
                        "without labels: see docs/EVALUATION.md); other values are for sensitivity checks only")


def run(args: argparse.Namespace) -> int:
    scene_list = run_mod.load_scenes(args.scene, args.scg_scale)
    keep = set(args.models.split(",")) if args.models else None
    cands = candidate_mod.candidates(args.model_dir, keep, peers=not args.no_peers, dl_l8s2_uv=not args.no_dl_l8s2_uv)
    print(scene_mod.describe(scene_list))
    regions = []
    if not args.no_clear:
        from cloudmask.evaluate import clear

        regions = clear.held_out_regions()
        print(f"{len(regions)} held-out clear regions for false alarms: {', '.join(g.name for g in regions) or 'none found'}")
    doc = run_mod.evaluate(scene_list, cands, chip=args.chip, overlap=args.overlap, batch=args.batch, out=args.out,
                           panels=not args.no_panels, clear_regions=regions)
    if not args.no_heldout:
        from cloudmask.evaluate import heldout

        print("held-out real acquisitions (built labels, agreement not accuracy):")
        doc["held_out_real"] = heldout.score(cands, chip=args.chip, overlap=args.overlap, batch=args.batch,
                                             cache=args.out / "label_cache", log=lambda *a: None)
    doc["command"] = "cloudmask evaluate " + shlex.join(args.argv)  # set by both entry points, as for `train`
    if args.gate:
        from cloudmask.evaluate import gate

        served = gate.served_versions(REPO / "models")
        decision = gate.decide(doc["models"], doc.get("held_out_real", {}), served)
        gate.write(args.gate, decision, doc["models"], doc.get("held_out_real", {}), doc["command"], served)
        doc["gate"] = decision
        print(f"wrote the serving gate's routes to {args.gate}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(doc, indent=2, default=report.json_default) + "\n")
    (args.out / "metrics.md").write_text(f"`{doc['command']}`\n\n" + report.markdown(doc))
    report.print_tables(doc)
    if args.update_cards:
        from cloudmask.evaluate import cards

        for c in cands:
            if c.kind == "ours" and c.name in doc["models"] and c.path is not None:
                for f in cards.update(c.path, doc, c.name):
                    print(f"updated {f}")
    print(f"\nwrote {args.out / 'metrics.json'}, {args.out / 'metrics.md'}"
          + ("" if args.no_panels else f" and PNG panels in {args.out / 'panels'}"))
    return 0
