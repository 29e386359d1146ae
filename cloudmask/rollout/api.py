"""The Kubernetes side of `cloudmask rollout`: connect, read and merge-patch one InferenceService.

Every API failure leaves here as a RolloutError whose code says what went wrong (see errors.py).
A 404 is ambiguous on its own: the InferenceService may be missing, or the whole
serving.kserve.io/v1beta1 API (KServe's CRD) may be. API discovery (GET /apis/<group>/<version>)
tells them apart; the 404 body (object 404s name the object in `details`) is the fallback when
discovery itself cannot be read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from cloudmask.rollout.errors import ExitCode, RolloutError

# The KServe API this talks to (the InferenceService custom resource)
GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"

MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
) -> tuple[client.ApiClient, str]:
    """An API client and the namespace to work in.

    In a pod (KUBERNETES_SERVICE_HOST set) and with neither --kubeconfig nor --context given, the
    service account is used; otherwise the kubeconfig ($KUBECONFIG or ~/.kube/config). The
    namespace defaults to the pod's own, else the kubeconfig context's, else "default".
    """
    cfg = client.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException:
            pass  # not a usable pod environment after all: fall through to the kubeconfig
        else:
            if namespace is None and SERVICE_ACCOUNT_NAMESPACE.is_file():
                namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
            return client.ApiClient(cfg), namespace or "default"
    where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
        )
        if namespace is None:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
            namespace = ((chosen or {}).get("context") or {}).get("namespace")
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise RolloutError(
            ExitCode.NO_CLUSTER,
            f"no usable cluster configuration: not running in a pod, and kubeconfig {where} "
            f"could not be loaded{f' with context {context!r}' if context else ''} ({exc})",
        ) from exc
    return client.ApiClient(cfg), namespace or "default"


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _server_message(exc: ApiException) -> str:
    body = _status_body(exc)
    message = body.get("message") or (exc.body or "").strip() or exc.reason or "no message"
    causes = (body.get("details") or {}).get("causes") or []
    extra = "; ".join(
        f"{c.get('field')}: {c.get('message')}" if c.get("field") else str(c.get("message"))
        for c in causes
        if c.get("message") and c.get("message") not in message
    )
    return f"{message} ({extra})" if extra else message


class InferenceServices:
    """One named InferenceService in one namespace, through the CustomObjects API."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, request_timeout: float = 30.0):
        self.api = client.CustomObjectsApi(api_client)
        self.host = api_client.configuration.host
        self.namespace = namespace
        self.name = name
        self.request_timeout = request_timeout

    @property
    def ref(self) -> str:
        return f"InferenceService {self.namespace}/{self.name}"

    def get(self) -> dict[str, Any]:
        return self._call(
            "read",
            lambda: self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, _request_timeout=self.request_timeout
            ),
        )

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send `body` as a JSON merge patch (RFC 7386); returns the patched object."""
        return self._call(
            "patch",
            lambda: self.api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self.request_timeout,
            ),
        )

    def kserve_served(self) -> bool | None:
        """True/False: whether discovery lists inferenceservices in serving.kserve.io/v1beta1.
        None: discovery could not be read (e.g. forbidden)."""
        try:
            resp = self.api.get_api_resources(
                GROUP, VERSION, _preload_content=False, _request_timeout=self.request_timeout
            )
            listing = json.loads(resp.data)
        except ApiException as exc:
            return False if exc.status == 404 else None
        except (ValueError, urllib3.exceptions.HTTPError, OSError):
            return None
        return any(r.get("name") == PLURAL for r in listing.get("resources") or [])

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ApiException as exc:
            raise self._translate(what, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RolloutError(
                ExitCode.NO_CLUSTER, f"cannot reach the Kubernetes API server at {self.host}: {exc}"
            ) from exc

    def _translate(self, what: str, exc: ApiException) -> RolloutError:
        status = exc.status
        msg = _server_message(exc)
        if status == 401:
            return RolloutError(ExitCode.NO_CLUSTER, f"the API server at {self.host} rejected the credentials (401): {msg}")
        if status == 404:
            served = self.kserve_served()
            if served is None:
                # Discovery unreadable: an object 404 names the object in its Status details.
                served = bool((_status_body(exc).get("details") or {}).get("name"))
            if not served:
                return RolloutError(
                    ExitCode.CRD_MISSING,
                    f"the API server does not serve {PLURAL}.{GROUP}/{VERSION}: KServe's "
                    "InferenceService CRD is not installed in this cluster",
                )
            return RolloutError(
                ExitCode.NOT_FOUND,
                f"{self.ref} not found (404); check --name/--namespace/--context ({msg})",
            )
        if status == 409:
            return RolloutError(ExitCode.CONFLICT, f"conflict (409) on {what} of {self.ref}: {msg}")
        # Admission webhooks (KServe's validator) deny with the code they choose, often 403;
        # the API server prefixes their message with 'admission webhook "<name>" denied'.
        if status in (400, 422) or (status == 403 and "admission webhook" in msg):
            return RolloutError(ExitCode.INVALID, f"the {what} of {self.ref} was rejected ({status}): {msg}")
        if status == 403:
            return RolloutError(
                ExitCode.API_ERROR,
                f"forbidden (403) to {what} {self.ref}: {msg}. The identity needs get and patch on "
                f"{PLURAL}.{GROUP} in namespace {self.namespace}",
            )
        return RolloutError(ExitCode.API_ERROR, f"{what} of {self.ref} failed ({status} {exc.reason}): {msg}")
