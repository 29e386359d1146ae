"""python -m predictor: serve every cloudmask SavedModel under --model_dir with kserve's ModelServer.

Takes all of kserve's ModelServer flags (--http_port, --grpc_port, --workers, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from kserve import model_server as ms

from cloudmask import kserve_compat
from cloudmask.alloc import tune_malloc
from cloudmask.savedmodel import discover

from .model import SegmentationModel


def _bundled() -> Path:
    """The models that ship with the code: $CLOUDMASK_MODELS, the repo's models/ (a source or
    editable install), or the predictor image's /opt/cloudmask/models."""
    env = os.environ.get("CLOUDMASK_MODELS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent / "models"
    return repo if repo.is_dir() else Path("/opt/cloudmask/models")


BUNDLED = _bundled()


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(parents=[ms.parser], conflict_handler="resolve",
                                     description=__doc__)
    parser.add_argument("--model_dir", default=str(BUNDLED),
                        help="folder of <model-name>/<version>/ SavedModels (KServe mounts /mnt/models)")
    parser.add_argument("--fallback_model_dir", default=str(BUNDLED),
                        help="served when --model_dir holds no model (e.g. no storageUri was given)")
    parser.add_argument("--models", default="",
                        help="comma-separated model names to serve (default: all found)")
    kserve_compat.add_bind_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    tune_malloc()
    kserve_compat.grpc_message_limits(argv)
    found = discover(args.model_dir) if Path(args.model_dir).is_dir() else []
    if not found:
        logging.warning("no model under %s; serving the bundled models from %s",
                        args.model_dir, args.fallback_model_dir)
        found = discover(args.fallback_model_dir)
    wanted = {m for m in args.models.split(",") if m}
    if wanted:
        found = [m for m in found if m.contract.name in wanted]
    if not found:
        logging.error("no model to serve")
        return 2
    models = [SegmentationModel(m) for m in found]
    for m in models:
        m.load()
        logging.info("loaded %s version %s from %s", m.name, m.version, m.model_dir.path)
    kserve_compat.model_server(args).start(models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
