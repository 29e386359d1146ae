"""`cloudmask rollout start|status|promote|rollback`: arguments, and the read-plan-patch-wait loop."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, TextIO

from cloudmask.rollout import decide
from cloudmask.rollout.status import format_summary, summarize
from cloudmask.rollout.errors import EXIT_CODES_HELP, ExitCode, RolloutError

DEFAULT_NAME = "cloudmask"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_INTERVAL_S = 5.0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _percent(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be within 0..100, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Canary rollout of a new model version on the `cloudmask` InferenceService (KServe,\n"
        "Serverless mode): start sends a slice of traffic to it, promote sends it all, rollback\n"
        "pins traffic to the previous version and restores its storage URI."
    )
    parser.epilog = EXIT_CODES_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=DEFAULT_NAME, help="InferenceService name (default: %(default)s)")
    common.add_argument(
        "--namespace",
        "-n",
        default=None,
        help="namespace (default: the pod's own in a cluster, else the kubeconfig context's, else 'default')",
    )
    common.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
    common.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in a pod, without "
        "--kubeconfig/--context, the service account is used)",
    )
    common.add_argument(
        "--request-timeout", type=_positive, default=30.0, help="seconds per API request (default: %(default)s)"
    )

    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for the expected state (default: %(default)s)",
    )
    waiting.add_argument(
        "--interval", type=_positive, default=DEFAULT_INTERVAL_S, help="seconds between polls (default: %(default)s)"
    )

    def sub_parser(name: str, parents: list[argparse.ArgumentParser], help_text: str) -> argparse.ArgumentParser:
        return subs.add_parser(
            name,
            parents=parents,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    subs = parser.add_subparsers(dest="rollout_action", required=True, metavar="{start,status,promote,rollback}")
    start = sub_parser(
        "start",
        [common, waiting],
        "point the predictor at a new model version with canaryTrafficPercent, then wait until "
        "the new revision is Ready",
    )
    start.add_argument(
        "--model-uri",
        required=True,
        help="storage URI of the new version, which KServe's storage initializer downloads into "
        "/mnt/models: a model release, <model-name>/<version>/ folders, e.g. gs://BUCKET/models/2",
    )
    start.add_argument(
        "--percent", type=_percent, required=True, help="share of traffic for the new version, 0..100"
    )
    status = sub_parser(
        "status",
        [common],
        "show traffic split, latest created/ready/rolled-out and previous revisions, conditions",
    )
    status.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    sub_parser(
        "promote",
        [common, waiting],
        "send 100%% to the new revision (removes canaryTrafficPercent) and wait until KServe has rolled it out",
    )
    sub_parser(
        "rollback",
        [common, waiting],
        "pin all traffic to the previous revision (canaryTrafficPercent: 0), restore the previous storage URI, "
        "and wait until traffic is pinned",
    )


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        try:
            from cloudmask.rollout import api
        except ImportError as exc:  # the bare package does not need the kubernetes client
            raise RolloutError(
                ExitCode.API_ERROR, f"the kubernetes client is missing ({exc}); pip install 'cloudmask[deploy]'"
            ) from exc
        api_client, namespace = api.connect(args.kubeconfig, args.context, args.namespace)
        with api_client:
            isvcs = api.InferenceServices(api_client, namespace, args.name, args.request_timeout)
            return ACTIONS[args.rollout_action](isvcs, args, out)
    except RolloutError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.code)


# --- actions ------------------------------------------------------------------------------------


def _status(isvcs: Any, args: argparse.Namespace, out: TextIO) -> int:
    summary = summarize(isvcs.get())
    if args.json:
        json.dump(summary, out, indent=2)
        out.write("\n")
    else:
        print(format_summary(summary), file=out)
    return ExitCode.OK


def _start(isvcs: Any, args: argparse.Namespace, out: TextIO) -> int:
    print(
        f"start: {isvcs.ref}: storage URI -> {args.model_uri}, canaryTrafficPercent {args.percent}",
        file=out,
    )
    plan = _apply(isvcs, lambda obj: decide.plan_start(obj, args.model_uri, args.percent), out)
    _wait(isvcs, plan, args, out, f"the new revision to become Ready with {args.percent}% of traffic")
    return ExitCode.OK


def _promote(isvcs: Any, args: argparse.Namespace, out: TextIO) -> int:
    print(f"promote: {isvcs.ref}: removing canaryTrafficPercent", file=out)
    plan = _apply(isvcs, decide.plan_promote, out)
    _wait(isvcs, plan, args, out, f"{plan.revision} to carry 100% of traffic")
    return ExitCode.OK


def _rollback(isvcs: Any, args: argparse.Namespace, out: TextIO) -> int:
    print(f"rollback: {isvcs.ref}: canaryTrafficPercent 0", file=out)
    deadline = time.monotonic() + args.timeout
    plan = _apply(isvcs, decide.plan_rollback, out)
    _wait(isvcs, plan, args, out, f"all traffic on {plan.revision}", deadline)
    if plan.restore_after_pin:
        # KServe has moved latestRolledoutRevision back; now the spec can name the old model.
        plan = _apply(isvcs, decide.plan_rollback, out)
        _wait(isvcs, plan, args, out, f"all traffic on {plan.revision}", deadline)
    return ExitCode.OK


ACTIONS: dict[str, Callable[[Any, argparse.Namespace, TextIO], int]] = {
    "start": _start,
    "status": _status,
    "promote": _promote,
    "rollback": _rollback,
}


# --- read, plan, patch (one retry on conflict), wait --------------------------------------------


def _apply(isvcs: Any, make_plan: Callable[[dict], decide.Plan], out: TextIO) -> decide.Plan:
    """Read, plan and patch; on 409 read again, re-plan and patch once more. Returns the plan sent."""
    plan = make_plan(isvcs.get())
    for note in plan.notes:
        print(f"  note: {note}", file=out)
    if plan.patch is None:
        return plan
    try:
        isvcs.patch(plan.patch)
        return plan
    except RolloutError as exc:
        if exc.code != ExitCode.CONFLICT:
            raise
        print(f"  conflict: {isvcs.ref} changed since it was read; reading it again and retrying once", file=out)
    plan = make_plan(isvcs.get())
    if plan.patch is not None:
        isvcs.patch(plan.patch)
    return plan


def _wait(
    isvcs: Any,
    plan: decide.Plan,
    args: argparse.Namespace,
    out: TextIO,
    what: str,
    deadline: float | None = None,
) -> dict:
    started = time.monotonic()
    deadline = deadline if deadline is not None else started + args.timeout
    print(f"waiting up to {max(0.0, deadline - started):.0f}s for {what}", file=out)
    last = None
    while True:
        isvc = isvcs.get()
        verdict = decide.check(plan, isvc)
        if verdict.message != last:
            print(f"  [{time.monotonic() - started:4.0f}s] {verdict.message}", file=out, flush=True)
            last = verdict.message
        if verdict.state == decide.DONE:
            print(f"done: {verdict.message}", file=out)
            return isvc
        if verdict.state == decide.FAILED:
            hint = "run `cloudmask rollout rollback` to pin the previous version"
            raise RolloutError(ExitCode.NOT_POSSIBLE, f"{verdict.message}; {hint}")
        now = time.monotonic()
        if now >= deadline:
            raise RolloutError(
                ExitCode.TIMEOUT, f"timed out after {args.timeout:.0f}s waiting for {what}: {verdict.message}"
            )
        time.sleep(min(args.interval, deadline - now))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloudmask rollout")
    add_arguments(parser)
    return run(parser.parse_args(argv))
