"""The `cloudmask` command: serve, predict, train, evaluate, rollout."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, help). Modules load lazily: `cloudmask predict` never imports TensorFlow.
COMMANDS = {
    "serve": ("cloudmask.supervisor", "run the predictor and the transformer on 127.0.0.1"),
    "predict": ("cloudmask.predict", "mask a GeoTIFF through the service"),
    "train": ("cloudmask.train", "train the 6-band and 4-band U-Nets"),
    "evaluate": ("cloudmask.evaluate.cli", "score models and peers on labelled scenes"),
    "rollout": ("cloudmask.rollout", "canary rollout of a model version on KServe"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="cloudmask", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == cmd:  # only the chosen one is imported
            module = importlib.import_module(mod)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    args.argv = list(argv[1:])  # the subcommand's own arguments (recorded in model cards by `train`)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
