"""Exit codes of `cloudmask rollout` and the one exception that carries them.

Every failure the command can explain ends as a RolloutError with a code from ExitCode, so a
workflow step can tell "no cluster" from "KServe missing" from "the canary never became Ready".
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    API_ERROR = 1  # any other Kubernetes API error (403 Forbidden, 5xx, ...)
    USAGE = 2  # argparse's own code for bad arguments
    NO_CLUSTER = 3  # no kubeconfig / in-cluster config, API server unreachable, credentials rejected
    NOT_FOUND = 4  # the InferenceService does not exist in the namespace
    CONFLICT = 5  # 409 Conflict, still after one retry on a freshly read object
    INVALID = 6  # 422/400: the API server or KServe's admission webhook rejected the change
    TIMEOUT = 7  # the expected state was not reached within --timeout
    CRD_MISSING = 8  # serving.kserve.io/v1beta1 inferenceservices is not served: KServe not installed
    NOT_POSSIBLE = 9  # the rollout cannot proceed: revision failed, nothing to promote/roll back, ...


# Shown in the module docstring of cloudmask.rollout and in `--help` epilogs.
EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  other Kubernetes API error (e.g. 403 Forbidden: RBAC needs get/patch on
     inferenceservices.serving.kserve.io)
  2  bad command-line arguments
  3  no cluster: no kubeconfig or in-cluster config, API server unreachable,
     or credentials rejected (401)
  4  InferenceService not found (404 on the object)
  5  conflict (409) persisted after one retry on a freshly read object
  6  invalid change (422/400) rejected by the API server or KServe's webhook
  7  timed out waiting (--timeout) for the expected state
  8  InferenceService CRD missing: serving.kserve.io/v1beta1 not served
     (KServe not installed)
  9  rollout not possible: the new revision failed, or there is nothing to
     promote / roll back, or the predictor has no place for a storage URI"""


class RolloutError(Exception):
    """A failure with a message meant for the operator and the exit code to leave with."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
