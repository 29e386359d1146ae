"""`cloudmask rollout` end to end through the real `kubernetes` client, against a loopback HTTP server.

No Kubernetes API server can run here (no cluster, no Docker, no etcd), so FakeApiServer below stands
in for one: http.server on 127.0.0.1 at a free port, reached through a kubeconfig file the test
writes, so kubeconfig loading, bearer-token auth, URL building, JSON (de)serialisation and error
handling are the client's own. The stand-in serves only what the command uses, with the API
server's semantics for it:

- GET/PATCH /apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices/<name>; PATCH takes
  application/merge-patch+json only (415 otherwise), honours metadata.resourceVersion as a
  precondition (409 Conflict when stale), applies RFC 7386, bumps resourceVersion and, when the
  spec changed, metadata.generation;
- GET /apis/serving.kserve.io/v1beta1 (API discovery), 404 when "KServe is not installed";
- errors as metav1.Status bodies shaped like the real ones (object 404s name the object in
  `details`, unknown-API 404s do not); 401 for a wrong bearer token.

KServe's controller is played by a script: after each PATCH, each GET of the object installs the
next status from a list (the last one stays), so a test decides after how many polls the new
revision is Ready, or that it never is. The statuses come from the KServe-documented fixtures of
test_rollout_decide.py.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cloudmask.rollout import add_arguments, run
from cloudmask.rollout.errors import ExitCode

_spec = importlib.util.spec_from_file_location("rollout_doc_fixtures", Path(__file__).with_name("test_rollout_decide.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

MERGE_PATCH = "application/merge-patch+json"
ISVC_PATH = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/([^/]+)$")
DISCOVERY_PATH = "/apis/serving.kserve.io/v1beta1"
TOKEN = "t0ken-for-the-stand-in"


def status_body(code, reason, message, details=None):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details if details is not None else {}, "code": code}


def isvc_details(name="cloudmask"):
    return {"name": name, "group": "serving.kserve.io", "kind": "inferenceservices"}


class FakeApiServer:
    """Stands in for the Kubernetes API server; see the module docstring."""

    def __init__(self, isvc=None, *, kserve=True, discovery_code=None, not_found_text=False):
        self.isvc = copy.deepcopy(isvc)
        self.kserve = kserve
        self.discovery_code = discovery_code  # e.g. 403: discovery forbidden
        self.not_found_text = not_found_text  # answer unknown paths with a plain-text 404
        self.requests = []  # dicts: method, path, content_type, authorization, body (parsed), raw
        self.patch_errors = []  # (code, Status body) answers for the next PATCHes
        self.after_patch = []  # per successful PATCH: the statuses successive GETs install
        self.concurrent_writes = 0  # this many GETs are followed by another writer's update
        self._statuses = []
        self._patches = 0
        self.lock = threading.Lock()

    # -- lifecycle --
    def __enter__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def kubeconfig(self, directory: Path, *, namespace="models", token=TOKEN, port=None) -> Path:
        path = directory / "kubeconfig.yaml"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: stand-in\n  cluster:\n    server: http://127.0.0.1:{port or self.port}\n"
            f"users:\n- name: ci\n  user:\n    token: {token}\n"
            f"contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: ci\n    namespace: {namespace}\n"
            "current-context: stand-in\n"
        )
        return path

    def of(self, method, path=None):
        return [r for r in self.requests if r["method"] == method and (path is None or r["path"] == path)]

    # -- behaviour --
    def _handle(self, method, path, headers, raw):
        record = {"method": method, "path": path, "content_type": headers.get("Content-Type"),
                  "authorization": headers.get("Authorization"), "raw": raw,
                  "body": json.loads(raw) if raw else None}
        self.requests.append(record)
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        if path == DISCOVERY_PATH:
            if self.discovery_code:
                return self.discovery_code, status_body(self.discovery_code, "Forbidden", "discovery is forbidden")
            if not self.kserve:
                return self._unknown_path()
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "serving.kserve.io/v1beta1",
                         "resources": [{"name": "inferenceservices", "singularName": "inferenceservice",
                                        "namespaced": True, "kind": "InferenceService", "shortNames": ["isvc"],
                                        "verbs": ["delete", "get", "list", "patch", "create", "update", "watch"]}]}
        match = ISVC_PATH.match(path)
        if not match or not self.kserve:
            return self._unknown_path()
        namespace, name = match.groups()
        obj = self.isvc
        if obj is None or obj["metadata"]["name"] != name or obj["metadata"]["namespace"] != namespace:
            return 404, status_body(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found',
                                    isvc_details(name))
        if method == "GET":
            if self._statuses:
                step = self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]
                obj["status"] = copy.deepcopy(step(obj) if callable(step) else step)
            answer = copy.deepcopy(obj)
            if self.concurrent_writes:
                self.concurrent_writes -= 1
                obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
            return 200, answer
        if method == "PATCH":
            if headers.get("Content-Type") != MERGE_PATCH:
                return 415, status_body(415, "UnsupportedMediaType",
                                        f"the body of the request was in an unknown format - accepted media types "
                                        f"include: application/json-patch+json, {MERGE_PATCH}, application/apply-patch+yaml")
            if self.patch_errors:
                return self.patch_errors.pop(0)
            patch = record["body"]
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and wanted_rv != obj["metadata"]["resourceVersion"]:
                return 409, status_body(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again", isvc_details(name))
            patched = fx.merge_patch(obj, patch)
            patched["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
            if patched["spec"] != obj["spec"]:
                patched["metadata"]["generation"] = obj["metadata"]["generation"] + 1
            self.isvc = patched
            if self._patches < len(self.after_patch):
                self._statuses = list(self.after_patch[self._patches])
            self._patches += 1
            return 200, copy.deepcopy(patched)
        return 405, status_body(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _unknown_path(self):
        if self.not_found_text:
            return 404, "404 page not found\n"
        return 404, status_body(404, "NotFound", "the server could not find the requested resource")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with server.lock:
                    code, body = server._handle(self.command, urlsplit(self.path).path, self.headers, raw)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_PUT = do_POST = _serve

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture(autouse=True)
def _no_ambient_cluster(monkeypatch):
    # Neither a pod's service account nor a proxy may leak into these tests.
    for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG",
                "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def cli(*argv):
    parser = argparse.ArgumentParser(prog="cloudmask rollout")
    add_arguments(parser)
    return run(parser.parse_args([str(a) for a in argv]))


def state(make, **changes):
    """A status step: the status of a documented state, with some predictor fields changed."""
    def step(obj):
        status = copy.deepcopy(make()["status"])
        status["components"]["predictor"].update(changes)
        return status
    return step


def unchanged(obj):
    """The controller has not acted on the patch yet: the status from before it."""
    return obj["status"]


def creating(obj):
    status = copy.deepcopy(obj["status"])
    status["components"]["predictor"]["latestCreatedRevision"] = fx.REV2
    status["conditions"] = fx.conditions(ready="Unknown", config="Unknown", reason="RevisionMissing",
                                         message='Configuration "cloudmask-predictor" is waiting for a Revision to become ready.')
    return status


# --- status -------------------------------------------------------------------------------------


def test_status_json_through_kubeconfig(tmp_path, capsys):
    with FakeApiServer(fx.canary_tagged()) as api:
        rc = cli("status", "--json", "--kubeconfig", api.kubeconfig(tmp_path))
    out = capsys.readouterr().out
    assert rc == ExitCode.OK
    summary = json.loads(out)
    assert summary["phase"] == "canary" and summary["canaryTrafficPercent"] == 10
    assert [t["percent"] for t in summary["traffic"]] == [10, 90]
    (get,) = api.of("GET")
    # Namespace from the kubeconfig context; bearer token from its user.
    assert get["path"] == "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/cloudmask"
    assert get["authorization"] == f"Bearer {TOKEN}"


def test_status_text_with_explicit_namespace_and_name(tmp_path, capsys):
    obj = fx.promoted()
    obj["metadata"].update(name="cm-eu", namespace="serving")
    with FakeApiServer(obj) as api:
        rc = cli("status", "--kubeconfig", api.kubeconfig(tmp_path), "-n", "serving", "--name", "cm-eu")
    out = capsys.readouterr().out
    assert rc == ExitCode.OK
    assert "InferenceService serving/cm-eu: stable (Ready=True)" in out
    assert f"latestRolledoutRevision:   {fx.REV2}" in out and f"previousRolledoutRevision: {fx.REV1}" in out
    assert api.of("GET")[0]["path"].endswith("/namespaces/serving/inferenceservices/cm-eu")


# --- start --------------------------------------------------------------------------------------


def test_start_merge_patches_then_polls_until_ready(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.after_patch = [[unchanged, creating, creating, state(fx.canary_10)]]
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path),
                 "--interval", 0.01, "--timeout", 60)
    out = capsys.readouterr().out
    assert rc == ExitCode.OK, out
    (patch,) = api.of("PATCH")
    assert patch["content_type"] == MERGE_PATCH
    container = copy.deepcopy(fx.first_rollout()["spec"]["predictor"]["containers"][0])
    container["env"][0]["value"] = fx.URI2
    assert patch["body"] == {
        "metadata": {"resourceVersion": "4711"},
        "spec": {"predictor": {"canaryTrafficPercent": 10, "containers": [container],
                               "annotations": {fx.PREV: fx.URI1}}},
    }
    # One read to plan, then polls: unchanged, creating (twice), ready.
    assert len(api.of("GET")) == 1 + 4
    assert api.isvc["metadata"]["generation"] == 2
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("  [")]
    assert f"waiting for KServe to create the new revision (latest created: {fx.REV1})" in progress[0]
    assert f"revision {fx.REV2} not ready yet (latest ready: {fx.REV1})" in progress[1]
    assert len(progress) == 3  # unchanged messages are not repeated
    assert lines[-1].startswith(f"done: revision {fx.REV2} is Ready; traffic 10% {fx.REV2}")


def test_start_times_out_when_the_revision_never_gets_ready(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.after_patch = [[creating]]
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path),
                 "--interval", 0.02, "--timeout", 0.2)
    err = capsys.readouterr().err
    assert rc == ExitCode.TIMEOUT == 7
    assert "timed out" in err and f"revision {fx.REV2} not ready yet" in err
    assert len(api.of("GET")) >= 3


def test_start_stops_on_a_failed_revision(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.after_patch = [[unchanged, state(fx.canary_failed)]]
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path),
                 "--interval", 0.01, "--timeout", 60)
    err = capsys.readouterr().err
    assert rc == ExitCode.NOT_POSSIBLE
    assert "ExitCode137" in err and "cloudmask rollout rollback" in err


# --- promote ------------------------------------------------------------------------------------


def test_promote_sends_null_and_waits_for_rollout(tmp_path, capsys):
    with FakeApiServer(fx.canary_10()) as api:
        api.after_patch = [[unchanged, state(fx.promoted)]]
        rc = cli("promote", "--kubeconfig", api.kubeconfig(tmp_path), "--interval", 0.01)
    out = capsys.readouterr().out
    assert rc == ExitCode.OK, out
    (patch,) = api.of("PATCH")
    assert patch["content_type"] == MERGE_PATCH
    assert json.loads(patch["raw"]) == {"metadata": {"resourceVersion": "4711"},
                                        "spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert '"canaryTrafficPercent": null' in patch["raw"]
    assert "canaryTrafficPercent" not in api.isvc["spec"]["predictor"]
    assert f"done: {fx.REV2} promoted" in out


def test_promote_refuses_failed_canary_without_patching(tmp_path, capsys):
    with FakeApiServer(fx.canary_failed()) as api:
        rc = cli("promote", "--kubeconfig", api.kubeconfig(tmp_path))
    assert rc == ExitCode.NOT_POSSIBLE
    assert api.of("PATCH") == []
    assert "refusing to promote" in capsys.readouterr().err


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_of_canary_pins_and_restores_uri(tmp_path, capsys):
    def pinned(obj):
        # KServe after `canaryTrafficPercent: 0` with a restored spec: a new revision 00003 (old model)
        # gets created, traffic stays 100% on 00001.
        status = state(fx.rolled_back)(obj)
        status["components"]["predictor"]["latestCreatedRevision"] = fx.REV3
        return status

    with FakeApiServer(fx.canary_10()) as api:
        api.after_patch = [[unchanged, pinned]]
        rc = cli("rollback", "--kubeconfig", api.kubeconfig(tmp_path), "--interval", 0.01)
    out = capsys.readouterr().out
    assert rc == ExitCode.OK, out
    (patch,) = api.of("PATCH")
    assert patch["content_type"] == MERGE_PATCH
    pred = patch["body"]["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 0
    assert pred["containers"][0]["env"][0] == {"name": "STORAGE_URI", "value": fx.URI1}
    assert f"done: traffic pinned to {fx.REV1}" in out


def test_rollback_after_promotion_pins_then_restores(tmp_path, capsys):
    with FakeApiServer(fx.promoted()) as api:
        api.after_patch = [
            [unchanged, state(fx.promoted), state(fx.rolled_back)],  # KServe moves rolled-out back to 00001
            [unchanged, state(fx.rolled_back, latestCreatedRevision=fx.REV3)],
        ]
        rc = cli("rollback", "--kubeconfig", api.kubeconfig(tmp_path), "--interval", 0.01)
    out = capsys.readouterr().out
    assert rc == ExitCode.OK, out
    first, second = api.of("PATCH")
    assert first["body"] == {"metadata": {"resourceVersion": "4711"}, "spec": {"predictor": {"canaryTrafficPercent": 0}}}
    assert second["body"]["metadata"] == {"resourceVersion": "4712"}
    assert set(second["body"]["spec"]["predictor"]) == {"containers"}
    assert second["body"]["spec"]["predictor"]["containers"][0]["env"][0] == {"name": "STORAGE_URI", "value": fx.URI1}
    assert api.isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert out.count(f"done: traffic pinned to {fx.REV1}") == 2


def test_rollback_with_nothing_to_roll_back_to(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        rc = cli("rollback", "--kubeconfig", api.kubeconfig(tmp_path))
    assert rc == ExitCode.NOT_POSSIBLE and api.of("PATCH") == []
    assert "nothing to roll back to" in capsys.readouterr().err


# --- conflicts ----------------------------------------------------------------------------------


def test_conflict_is_retried_once_on_a_fresh_read(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.concurrent_writes = 1  # someone else updates the object right after our first read
        api.after_patch = [[state(fx.canary_10)]]
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path),
                 "--interval", 0.01)
    out = capsys.readouterr().out
    assert rc == ExitCode.OK, out
    stale_patch, fresh_patch = api.of("PATCH")
    assert stale_patch["body"]["metadata"]["resourceVersion"] == "4711"
    assert fresh_patch["body"]["metadata"]["resourceVersion"] == "4712"
    assert "conflict" in out and "retrying once" in out


def test_conflict_twice_exits_5(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.concurrent_writes = 2
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path))
    assert rc == ExitCode.CONFLICT == 5
    assert len(api.of("PATCH")) == 2
    assert "the object has been modified" in capsys.readouterr().err


# --- errors -------------------------------------------------------------------------------------


def test_invalid_422_exits_6_with_the_servers_reason(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        api.patch_errors = [(422, status_body(
            422, "Invalid",
            'InferenceService.serving.kserve.io "cloudmask" is invalid: spec.predictor.containers[0].env[0].value: '
            'Invalid value: "ftp://x": unsupported storage URI',
            {**isvc_details(), "kind": "InferenceService", "causes": [{
                "reason": "FieldValueInvalid", "message": 'Invalid value: "ftp://x": unsupported storage URI',
                "field": "spec.predictor.containers[0].env[0].value"}]}))]
        rc = cli("start", "--model-uri", "ftp://x", "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path))
    err = capsys.readouterr().err
    assert rc == ExitCode.INVALID == 6
    assert "rejected (422)" in err and "unsupported storage URI" in err
    assert len(api.of("PATCH")) == 1  # no retry for an invalid change


def test_webhook_denial_is_invalid_and_rbac_403_is_an_api_error(tmp_path, capsys):
    denied = 'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request: bad'
    with FakeApiServer(fx.canary_10()) as api:
        api.patch_errors = [(403, status_body(403, "Forbidden", denied))]
        assert cli("promote", "--kubeconfig", api.kubeconfig(tmp_path)) == ExitCode.INVALID
        api.patch_errors = [(403, status_body(403, "Forbidden", 'inferenceservices.serving.kserve.io "cloudmask" is '
                                              'forbidden: User "ci" cannot patch resource'))]
        assert cli("promote", "--kubeconfig", api.kubeconfig(tmp_path)) == ExitCode.API_ERROR
    err = capsys.readouterr().err
    assert "denied the request" in err and "needs get and patch" in err


def test_object_404_exits_4(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        rc = cli("status", "--kubeconfig", api.kubeconfig(tmp_path), "--name", "nope")
    err = capsys.readouterr().err
    assert rc == ExitCode.NOT_FOUND == 4
    assert "InferenceService models/nope not found" in err
    assert api.of("GET", DISCOVERY_PATH)  # told apart from a missing CRD by discovery


def test_crd_missing_exits_8(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout(), kserve=False) as api:
        rc = cli("start", "--model-uri", fx.URI2, "--percent", 10, "--kubeconfig", api.kubeconfig(tmp_path))
    err = capsys.readouterr().err
    assert rc == ExitCode.CRD_MISSING == 8
    assert "CRD is not installed" in err
    assert api.of("PATCH") == []


@pytest.mark.parametrize(("isvc_exists", "kserve", "text_404", "expected"), [
    (False, True, False, ExitCode.NOT_FOUND),  # object 404: the Status details name the object
    (True, False, False, ExitCode.CRD_MISSING),  # unknown API path: a Status without details
    (True, False, True, ExitCode.CRD_MISSING),  # unknown API path, plain-text 404 as older servers send
])
def test_404_with_discovery_forbidden_falls_back_on_the_body(tmp_path, capsys, isvc_exists, kserve, text_404, expected):
    with FakeApiServer(fx.first_rollout() if isvc_exists else None, kserve=kserve,
                       discovery_code=403, not_found_text=text_404) as api:
        rc = cli("status", "--kubeconfig", api.kubeconfig(tmp_path))
    assert rc == expected
    assert api.of("GET", DISCOVERY_PATH)


def test_wrong_token_exits_3(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        rc = cli("status", "--kubeconfig", api.kubeconfig(tmp_path, token="expired"))
    assert rc == ExitCode.NO_CLUSTER == 3
    assert "rejected the credentials (401)" in capsys.readouterr().err


def test_unreachable_api_server_exits_3(tmp_path, capsys):
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = FakeApiServer().kubeconfig(tmp_path, port=port)
    rc = cli("status", "--kubeconfig", kubeconfig, "--request-timeout", 5)
    assert rc == ExitCode.NO_CLUSTER
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in capsys.readouterr().err


def test_missing_kubeconfig_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    rc = cli("status")
    assert rc == ExitCode.NO_CLUSTER
    assert "no usable cluster configuration" in capsys.readouterr().err
    rc = cli("status", "--kubeconfig", tmp_path / "absent.yaml")
    assert rc == ExitCode.NO_CLUSTER


def test_unknown_context_exits_3(tmp_path, capsys):
    with FakeApiServer(fx.first_rollout()) as api:
        rc = cli("status", "--kubeconfig", api.kubeconfig(tmp_path), "--context", "prod")
    assert rc == ExitCode.NO_CLUSTER and api.requests == []
    assert "context 'prod'" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    for argv in (["start", "--model-uri", fx.URI2, "--percent", "150"], ["start", "--percent", "10"], ["resume"]):
        with pytest.raises(SystemExit) as exc:
            cli(*argv)
        assert exc.value.code == ExitCode.USAGE


def test_the_cloudmask_command_dispatches_to_rollout(tmp_path, capsys):
    from cloudmask.cli import main

    with FakeApiServer(fx.canary_10()) as api:
        rc = main(["rollout", "status", "--json", "--kubeconfig", str(api.kubeconfig(tmp_path))])
    assert rc == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["latestReadyRevision"] == fx.REV2
