"""An in-process fake Kubernetes API server speaking real HTTP on 127.0.0.1.

No kube-apiserver can be installed here, so this implements just the semantics gpuctk
relies on, with the real REST paths and Status bodies:

* CRUD for the core, apps, batch, node.k8s.io, rbac and nvidia.com kinds gpuctk uses,
  ``labelSelector`` on lists, 404/409 Status errors;
* the RuntimeClass admission plugin: a Pod naming a missing RuntimeClass is rejected
  with 403 ``pod rejected: RuntimeClass "X" not found``; a Job's controller records a
  ``FailedCreate`` Event instead of a Pod;
* a Job creates a Pod, and a fake "kubelet" runs the Pod's command for real as a local
  process with the Pod's env (downward-API ``spec.nodeName`` resolved) plus the
  kubelet's own env (``KUBECONFIG`` pointing back here). The fake nvidia-smi directory is
  put on PATH only when the pod would get a GPU: a RuntimeClass whose handler is listed in
  ``gpu_handlers`` with ``NVIDIA_VISIBLE_DEVICES`` set, or an ``nvidia.com/gpu`` limit.
  Pod phase, logs and Job status follow the process. ``--host-root /host`` (the agent's
  hostPath mount) becomes an empty temp dir, ``FakeKube.host_root``, so runs are hermetic.

The server is bounded: ``FakeKube`` is a context manager, and a watchdog stops it after
``max_lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# plural -> (group/version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "nodes": ("v1", "Node", False),
    "namespaces": ("v1", "Namespace", False),
    "pods": ("v1", "Pod", True),
    "configmaps": ("v1", "ConfigMap", True),
    "serviceaccounts": ("v1", "ServiceAccount", True),
    "events": ("v1", "Event", True),
    "jobs": ("batch/v1", "Job", True),
    "daemonsets": ("apps/v1", "DaemonSet", True),
    "runtimeclasses": ("node.k8s.io/v1", "RuntimeClass", False),
    "roles": ("rbac.authorization.k8s.io/v1", "Role", True),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding", True),
    "clusterroles": ("rbac.authorization.k8s.io/v1", "ClusterRole", False),
    "clusterrolebindings": ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False),
    "clusterpolicies": ("nvidia.com/v1", "ClusterPolicy", False),
}
KIND_TO_PLURAL = {v[1]: k for k, v in RESOURCES.items()}

_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif labels.get(term) is None:
            return False
    return True


class FakeKube:
    def __init__(
        self,
        *,
        kubelet_env: dict[str, str] | None = None,
        gpu_path: str | None = None,
        gpu_handlers: tuple[str, ...] = ("nvidia", "nvidia-cdi", "nvidia-legacy"),
        node_name: str = "gpu-node-1",
        command_map: Callable[[list[str]], list[str]] | None = None,
        max_lifetime: float = 120.0,
        process_timeout: float = 60.0,
    ) -> None:
        self.store: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name) -> obj
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.kubelet_env = dict(kubelet_env or {})
        self.gpu_path = gpu_path
        self.gpu_handlers = gpu_handlers
        self.node_name = node_name
        self.command_map = command_map or default_command_map
        self.max_lifetime = max_lifetime
        self.process_timeout = process_timeout
        self._rv = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._host_dir = tempfile.TemporaryDirectory(prefix="gpuctk-fakekube-host-")
        self.host_root = self._host_dir.name
        self._server: ThreadingHTTPServer | None = None
        self._stopped = threading.Event()
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def setup(self) -> None:
                # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK
                # add ~40 ms to every request
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if not raw:
                    return None
                try:
                    return json.loads(raw)
                except ValueError:
                    import yaml

                    return yaml.safe_load(raw)

            def _send(self, code: int, obj: Any, text: bool = False) -> None:
                data = obj.encode() if text else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                try:
                    body = self._body() if method in ("POST", "PUT", "PATCH") else None
                    code, obj, text = fake.handle(method, self.path, body)
                except Exception as exc:  # a bug in the fake: say so loudly
                    code, obj, text = 500, _status(500, "InternalError", f"fake apiserver: {exc!r}"), False
                self._send(code, obj, text)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        watchdog = threading.Timer(self.max_lifetime, self.stop)
        watchdog.daemon = True
        watchdog.start()
        self._watchdog = watchdog
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._watchdog.cancel()
        for t in self._threads:
            t.join(timeout=self.process_timeout)
        self._host_dir.cleanup()

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def write_kubeconfig(self, path: str, namespace: str = "default") -> str:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
            ],
        }
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    # -- store helpers -------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed an object directly (no admission)."""
        plural = KIND_TO_PLURAL[obj["kind"]]
        return self._put(plural, obj.get("metadata", {}).get("namespace", ""), copy.deepcopy(obj))

    def _put(self, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        gv, kind, namespaced = RESOURCES[plural]
        meta = obj.setdefault("metadata", {})
        if namespaced:
            meta["namespace"] = ns or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta["resourceVersion"] = str(next(self._rv))
        obj["apiVersion"], obj["kind"] = gv, kind
        with self.lock:
            self.store[(plural, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        plural = KIND_TO_PLURAL[kind]
        with self.lock:
            return [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self.store.items())
                if p == plural and (namespace is None or ns == namespace)
            ]

    def get_obj(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.lock:
            o = self.store.get((KIND_TO_PLURAL[kind], namespace, name))
            return copy.deepcopy(o) if o else None

    def _event(self, ns: str, involved: dict[str, Any], reason: str, message: str) -> None:
        name = f"{involved['metadata']['name']}.{uuid.uuid4().hex[:10]}"
        self._put(
            "events",
            ns,
            {
                "metadata": {"name": name},
                "reason": reason,
                "message": message,
                "type": "Warning",
                "involvedObject": {
                    "kind": involved["kind"],
                    "name": involved["metadata"]["name"],
                    "namespace": ns,
                },
            },
        )

    # -- REST ----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, Any, bool]:
        url = urlparse(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append((method, url.path))
        m = _PATH.match(url.path)
        if not m:
            return (
                404,
                _status(404, "NotFound", f"the server could not find the requested resource {url.path}"),
                False,
            )
        plural, name, sub = m["plural"], m["name"], m["sub"]
        ns = m["ns"] or ""
        if plural not in RESOURCES:
            return (
                404,
                _status(404, "NotFound", f"the server could not find the requested resource ({plural})"),
                False,
            )
        gv, kind, namespaced = RESOURCES[plural]
        if (m["cv"] or f"{m['g']}/{m['v']}") != gv:
            return 404, _status(404, "NotFound", f"no {plural} in this API group/version"), False
        with self.lock:
            if method == "GET" and name is None:
                items = [
                    copy.deepcopy(o)
                    for (p, ons, _), o in sorted(self.store.items())
                    if p == plural
                    and (not ns or ons == ns)
                    and _matches(o.get("metadata", {}).get("labels") or {}, query.get("labelSelector", ""))
                ]
                return (
                    200,
                    {
                        "kind": f"{kind}List",
                        "apiVersion": gv,
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    },
                    False,
                )
            key = (plural, ns if namespaced else "", name or "")
            if method == "GET" and sub == "log":
                pod = self.store.get(key)
                if pod is None:
                    return 404, _status(404, "NotFound", f'pods "{name}" not found'), False
                log = pod.get("_log", "")
                tail = query.get("tailLines")
                if tail:
                    log = "".join(log.splitlines(True)[-int(tail) :])
                return 200, log, True
            if method == "GET":
                obj = self.store.get(key)
                if obj is None:
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found'), False
                return 200, self._public(obj), False
            if method == "POST":
                return self._create(plural, ns, body)
            if method in ("PUT", "PATCH"):
                if key not in self.store:
                    if method == "PATCH":
                        return self._create(plural, ns, body)
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found'), False
                obj = copy.deepcopy(body) if method == "PUT" else {**self.store[key], **body}
                obj.setdefault("metadata", {})["name"] = name
                return 200, self._public(self._put(plural, ns, obj)), False
            if method == "DELETE":
                obj = self.store.pop(key, None)
                if obj is None:
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found'), False
                if plural == "jobs":  # cascade: the Job's pods go too
                    for k in [
                        k
                        for k, o in self.store.items()
                        if k[0] == "pods"
                        and k[1] == ns
                        and (o["metadata"].get("labels") or {}).get("job-name") == name
                    ]:
                        del self.store[k]
                return 200, _status(200, "", "") | {"status": "Success"}, False
        return 405, _status(405, "MethodNotAllowed", method), False

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def _create(self, plural: str, ns: str, body: Any) -> tuple[int, Any, bool]:
        if not isinstance(body, dict) or not (body.get("metadata") or {}).get("name"):
            return 422, _status(422, "Invalid", "metadata.name: Required value"), False
        _, _kind, namespaced = RESOURCES[plural]
        name = body["metadata"]["name"]
        if namespaced and ns and not self.store.get(("namespaces", "", ns)) and ns != "default":
            return 404, _status(404, "NotFound", f'namespaces "{ns}" not found'), False
        if (plural, ns if namespaced else "", name) in self.store:
            return 409, _status(409, "AlreadyExists", f'{plural} "{name}" already exists'), False
        if plural == "pods":
            err = self._admit_pod(body)
            if err:
                return 403, _status(403, "Forbidden", err), False
        obj = self._put(plural, ns, copy.deepcopy(body))
        if plural == "jobs":
            self._start_job(obj)
        return 201, self._public(obj), False

    def _admit_pod(self, pod: dict[str, Any]) -> str | None:
        rc = (pod.get("spec") or {}).get("runtimeClassName")
        if rc and ("runtimeclasses", "", rc) not in self.store:
            return f'pod rejected: RuntimeClass "{rc}" not found'
        return None

    # -- job controller + kubelet ---------------------------------------------------------
    def _start_job(self, job: dict[str, Any]) -> None:
        ns, jname = job["metadata"]["namespace"], job["metadata"]["name"]
        template = copy.deepcopy(job["spec"]["template"])
        pod = {
            "metadata": {**(template.get("metadata") or {}), "name": f"{jname}-{uuid.uuid4().hex[:5]}"},
            "spec": template["spec"],
        }
        labels = pod["metadata"].setdefault("labels", {})
        labels.update(
            {
                "job-name": jname,
                "batch.kubernetes.io/job-name": jname,
                "controller-uid": job["metadata"]["uid"],
            }
        )
        err = self._admit_pod(pod)
        if err:
            self._event(ns, job, "FailedCreate", f"Error creating: {err}")
            return
        pod["spec"]["nodeName"] = self.node_name
        pod["status"] = {"phase": "Pending"}
        stored = self._put("pods", ns, pod)
        job["status"] = {"active": 1, "startTime": stored["metadata"]["creationTimestamp"]}
        t = threading.Thread(target=self._run_pod, args=(ns, jname, stored["metadata"]["name"]), daemon=True)
        self._threads.append(t)
        t.start()

    def _pod_env(self, pod: dict[str, Any]) -> tuple[dict[str, str], bool]:
        spec = pod["spec"]
        ctr = spec["containers"][0]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
        env.update(self.kubelet_env)
        for e in ctr.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "spec.nodeName":
                env[e["name"]] = spec.get("nodeName", "")
            elif ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "metadata.namespace":
                env[e["name"]] = pod["metadata"]["namespace"]
        limits = (ctr.get("resources") or {}).get("limits") or {}
        rc = spec.get("runtimeClassName")
        handler = ""
        if rc:
            rco = self.store.get(("runtimeclasses", "", rc))
            handler = (rco or {}).get("handler", "")
        gpu = str(limits.get("nvidia.com/gpu", "0")) not in ("0", "") or (
            handler in self.gpu_handlers and bool(env.get("NVIDIA_VISIBLE_DEVICES"))
        )
        if gpu and self.gpu_path:
            env["PATH"] = self.gpu_path + os.pathsep + env["PATH"]
        return env, gpu

    @staticmethod
    def _ctr_status(ctr: dict[str, Any], ready: bool, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": ctr["name"],
            "image": ctr.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "state": state,
        }

    def _run_pod(self, ns: str, jname: str, pname: str) -> None:
        with self.lock:
            pod = self.store.get(("pods", ns, pname))
            if pod is None:
                return
            env, _ = self._pod_env(pod)
            ctr = pod["spec"]["containers"][0]
            argv = self.command_map(list(ctr.get("command") or []) + list(ctr.get("args") or []))
            # the pod's hostPath mount of / at /host: an empty stand-in "host" keeps runs hermetic
            argv = [
                self.host_root if a == "/host" and i and argv[i - 1] == "--host-root" else a
                for i, a in enumerate(argv)
            ]
            pod["status"] = {
                "phase": "Running",
                "containerStatuses": [self._ctr_status(ctr, True, {"running": {}})],
            }
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=self.process_timeout, check=False
            )
            rc, out = proc.returncode, proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, out = 1, f"kubelet: {exc}\n"
        with self.lock:
            pod = self.store.get(("pods", ns, pname))
            if pod is not None:
                pod["_log"] = out
                pod["status"] = {
                    "phase": "Succeeded" if rc == 0 else "Failed",
                    "containerStatuses": [self._ctr_status(ctr, False, {"terminated": {"exitCode": rc}})],
                }
            job = self.store.get(("jobs", ns, jname))
            if job is not None:
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if rc == 0:
                    job["status"] = {
                        "succeeded": 1,
                        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}],
                    }
                else:
                    job["status"] = {
                        "failed": 1,
                        "conditions": [
                            {
                                "type": "Failed",
                                "status": "True",
                                "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit",
                                "lastTransitionTime": now,
                            }
                        ],
                    }
                job["metadata"]["resourceVersion"] = str(next(self._rv))


def default_command_map(argv: list[str]) -> list[str]:
    """Run the image's ``gpuctk`` entry point from this checkout's interpreter."""
    if argv and argv[0] in ("gpuctk", "/usr/local/bin/gpuctk"):
        return [sys.executable, "-m", "gpuctk.cli.main", *argv[1:]]
    return argv


def nvidia_node(
    name: str,
    runtime: str,
    *,
    gpus: int = 0,
    present: bool = True,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node object as the kubelet reports it."""
    lab = {"kubernetes.io/hostname": name, **(labels or {})}
    if present:
        lab["nvidia.com/gpu.present"] = "true"
    meta: dict[str, Any] = {"name": name, "labels": lab}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta,
        "status": {
            "nodeInfo": {
                "containerRuntimeVersion": runtime,
                "kubeletVersion": "v1.31.0",
                "kubeProxyVersion": "v1.31.0",
                "osImage": "Ubuntu 22.04.4 LTS",
                "kernelVersion": "5.15.0-105-generic",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
            },
            "allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": str(gpus)},
            "capacity": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": str(gpus)},
        },
    }
