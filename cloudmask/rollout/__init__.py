"""Canary rollout of model versions on the `cloudmask` InferenceService (KServe, Serverless mode).

    cloudmask rollout start --model-uri gs://BUCKET/models/2 --percent 10 [--timeout 600]
    cloudmask rollout status [--json]
    cloudmask rollout promote
    cloudmask rollout rollback

Common options: --name (default cloudmask), --namespace/-n, --context, --kubeconfig,
--request-timeout; start/promote/rollback also take --timeout and --interval (seconds).

Exit codes:
  0  success
  1  other Kubernetes API error (e.g. 403 Forbidden)
  2  bad command-line arguments
  3  no cluster: no kubeconfig/in-cluster config, API server unreachable, credentials rejected (401)
  4  InferenceService not found (404 on the object)
  5  conflict (409) persisted after one retry on a freshly read object
  6  invalid change (422/400, or a denial by KServe's admission webhook)
  7  timed out waiting for the expected state
  8  InferenceService CRD missing: serving.kserve.io/v1beta1 not served (KServe not installed)
  9  rollout not possible: the new revision failed, nothing to promote / roll back, or no place
     for a storage URI in the predictor

decide.py holds the decisions (pure, on InferenceService dicts), api.py the Kubernetes client,
cli.py the arguments and the read-plan-patch-wait loop.
"""

from cloudmask.rollout.cli import add_arguments, main, run
from cloudmask.rollout.errors import ExitCode, RolloutError

__all__ = ["add_arguments", "run", "main", "ExitCode", "RolloutError"]
