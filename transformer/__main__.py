"""python -m transformer: the `cloudmask` service in front of the predictor.

Takes all of kserve's ModelServer flags; --predictor_host and --predictor_protocol (grpc-v2 by
default here, ~15x faster than REST for float tensors) point it at the predictor.
"""

from __future__ import annotations

import argparse
import os
import sys

from fastapi.responses import JSONResponse
from kserve import model_server as ms  # its argument parser: kserve's documented way to extend the CLI
from kserve.predictor_config import PredictorConfig

from cloudmask import contract, kserve_compat
from cloudmask.alloc import tune_malloc
from cloudmask.bodylimit import DEFAULT_MAX_BODY_BYTES

from . import uri_input
from .model import HOP_PROBABILITIES, STITCH, CloudMaskTransformer, PredictorTimeout, RequestTooLarge


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(parents=[ms.parser], conflict_handler="resolve", description=__doc__)
    parser.add_argument("--model_name", default=contract.SERVICE_NAME)
    parser.add_argument("--predictor_protocol", default="grpc-v2", choices=["grpc-v2", "v2"],
                        help="how to reach the predictor: grpc-v2 (default) or v2 (REST, binary tensors)")
    parser.add_argument("--model_family", default="cloudmask", choices=sorted(contract.FAMILIES),
                        help="which predictor models to use: the U-Nets or the spectral-test baseline")
    parser.add_argument("--max_pixels", type=int, default=contract.MAX_PIXELS,
                        help="pixel budget of one request (after --window); larger ones get 413")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help="largest REST request body; a larger Content-Length gets 413 before the body is read "
                             "(default 640 MiB: a full-budget 13-band uint16 file fits even as base64 JSON)")
    parser.add_argument("--batch_size", type=int, default=4,
                        help="chips per predictor call, at most --batch_pixels of them (default 4)")
    parser.add_argument("--batch_pixels", type=int, default=contract.BATCH_PIXELS,
                        help="chip pixels per predictor call, at least one chip (default four 512 px chips' worth)")
    parser.add_argument("--max_chip", type=int, default=contract.MAX_CHIP,
                        help="largest chip side, px, a multiple of 16: chips are sized to the request up to it "
                             "(default 1024; 512 keeps them no larger than the nets' training chips)")
    parser.add_argument("--max_in_flight", type=int, default=2, help="predictor calls in flight per request")
    parser.add_argument("--overlap", type=int, default=contract.OVERLAP, help="overlap of neighbouring chips, px")
    parser.add_argument("--stitch", default="crop", choices=STITCH,
                        help="how chips become one mask: crop (default: each chip's classes, cropped at the middle of "
                             "the overlaps) or blend (probabilities averaged over the overlaps, --hop_probabilities)")
    parser.add_argument("--hop_probabilities", default="fp32", choices=HOP_PROBABILITIES,
                        help="with --stitch blend, what the predictor returns for blending chips: fp32 (exact) or uint8 "
                             "(round(255 p), a quarter of the bytes, changes ~0.02%% of pixels); one-chip requests "
                             "always get the predictor's classes")
    kserve_compat.add_bind_argument(parser)
    uri_input.add_arguments(parser)  # --allowed_uri_prefixes ... (URI input, off by default)
    # kserve's 600 s would hold a request (and its memory) for ten minutes behind a frozen predictor;
    # one deadline for all of a request's predictor calls, well under a client's usual 300 s
    parser.set_defaults(predictor_request_timeout_seconds=60)
    return parser.parse_args(argv)


def one_malloc_arena() -> bool:
    """glibc's malloc to one arena (mallopt M_ARENA_MAX), unless MALLOC_ARENA_MAX is set: by default every
    thread that allocates (grpc's, the executor's that decode and stitch) gets an arena of its own, and what one
    frees the others cannot reuse. Measured on a full-budget deflated request (bench.memory): 110 MB less peak
    over gRPC, 56 MB over REST, no slower (per-thread caches still serve the small allocations)."""
    import ctypes
    import ctypes.util

    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_arena_max = -8  # <malloc.h>
    return bool(mallopt(m_arena_max, 1))


async def _too_large(_request, exc: RequestTooLarge):
    return JSONResponse(status_code=413, content={"error": exc.details})


async def _timed_out(_request, exc: PredictorTimeout):
    return JSONResponse(status_code=504, content={"error": exc.details})


def main(argv=None) -> int:
    args = parse(argv)
    # GDAL's block cache defaults to 5 % of the machine's memory (not the pod's): bound it per process
    # 16 MB: a one-pass read gains nothing from more (measured on the full-budget 13-band file, band- or pixel-
    # interleaved, deflated: the same decode time as 64 MB, 49 MB less resident), and a bigger cache stays resident
    os.environ.setdefault("GDAL_CACHEMAX", "16")
    tune_malloc()
    one_malloc_arena()
    kserve_compat.grpc_message_limits(argv)
    kserve_compat.raw_model_infer()  # gRPC: the GeoTIFF stays in grpc's bytes of the message, not copied twice more
    kserve_compat.body_limit(args.max_body_bytes)
    predictor = PredictorConfig(
        predictor_host=args.predictor_host, predictor_protocol=args.predictor_protocol,
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
        predictor_request_retries=args.predictor_request_retries,
        predictor_health_check=args.enable_predictor_health_check)
    model = CloudMaskTransformer(
        name=args.model_name, family=args.model_family, max_pixels=args.max_pixels,
        batch_size=args.batch_size, max_in_flight=args.max_in_flight, overlap=args.overlap,
        max_chip=args.max_chip, batch_pixels=args.batch_pixels,
        timeout_s=args.predictor_request_timeout_seconds, hop_probabilities=args.hop_probabilities, stitch=args.stitch,
        uri_policy=uri_input.policy(args))
    server = kserve_compat.model_server(args, handlers={RequestTooLarge: _too_large, PredictorTimeout: _timed_out,
                                                        **uri_input.handlers()},
                                        predictor_config=predictor)
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
