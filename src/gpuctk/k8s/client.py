"""The thin Kubernetes API edge: plain dicts in and out, lightkube underneath (lazy).

Everything else in :mod:`gpuctk.k8s` talks to a :class:`KubeAPI`; tests hand it a real
client pointed at the in-process fake API server, so the HTTP path is exercised too.
"""

from __future__ import annotations

from typing import Any, Protocol

from gpuctk.errors import GpuctkError

# kind -> (apiVersion, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Node": ("v1", False),
    "Namespace": ("v1", False),
    "Pod": ("v1", True),
    "ConfigMap": ("v1", True),
    "ServiceAccount": ("v1", True),
    "Event": ("v1", True),
    "Job": ("batch/v1", True),
    "DaemonSet": ("apps/v1", True),
    "RuntimeClass": ("node.k8s.io/v1", False),
    "Role": ("rbac.authorization.k8s.io/v1", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", False),
    "ClusterPolicy": ("nvidia.com/v1", False),
}


class KubeAPI(Protocol):
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool: ...

    def logs(self, pod: str, namespace: str, tail_lines: int | None = None) -> str: ...


class KubeAPIError(GpuctkError):
    def __init__(self, message: str, code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class LightkubeAPI:
    """:class:`KubeAPI` over lightkube. ``kubeconfig``/``context`` as kubectl's flags;
    with neither, in-cluster service account, ``$KUBECONFIG`` or ``~/.kube/config``."""

    def __init__(
        self, kubeconfig: str | None = None, context: str | None = None, timeout: float = 10.0
    ) -> None:
        try:
            import httpx2 as httpx  # lightkube's HTTP library
            import yaml
            from lightkube import Client, KubeConfig
            from lightkube.core.exceptions import ConfigError
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise GpuctkError("Kubernetes support needs lightkube: pip install 'gpuctk[k8s]'") from exc
        try:
            kcfg = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
            single = kcfg.get(context)
            if single is None:
                raise ValueError(f"context {context!r} not found")
            self._client = Client(single, timeout=httpx.Timeout(timeout), field_manager="gpuctk")
        except (ConfigError, OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:
            # a kubeconfig of the wrong shape surfaces as any of these from lightkube's parser
            where = kubeconfig or "in-cluster / $KUBECONFIG / ~/.kube/config"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GpuctkError(f"no usable Kubernetes configuration ({where}): {first}") from exc
        self._httpx = httpx
        self.server = str(single.cluster.server)
        self._resources: dict[str, Any] = {}

    # -- helpers -------------------------------------------------------------------------
    def _res(self, kind: str) -> Any:
        if kind in self._resources:
            return self._resources[kind]
        if kind not in KINDS:
            raise GpuctkError(f"unsupported kind {kind}")
        api_version = KINDS[kind][0]
        res: Any
        if kind == "ClusterPolicy":
            from lightkube.generic_resource import create_global_resource

            res = create_global_resource("nvidia.com", "v1", "ClusterPolicy", "clusterpolicies")
        else:
            from lightkube.core.resource_registry import resource_registry

            res = resource_registry.load(api_version, kind)
        self._resources[kind] = res
        return res

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from lightkube import ApiError

        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            status = exc.status
            raise KubeAPIError(
                f"{what}: {status.message or exc}",
                code=int(status.code or 0),
                reason=str(status.reason or ""),
            ) from exc
        except self._httpx.TransportError as exc:
            raise KubeAPIError(
                f"cannot reach the Kubernetes API server {self.server}: {exc}; check "
                "--kubeconfig/--context and that the cluster is running"
            ) from exc
        except ValueError as exc:  # a response lightkube's models cannot decode
            raise KubeAPIError(f"{what}: unexpected response from {self.server}: {exc}") from exc

    @staticmethod
    def _to_dict(obj: Any) -> dict[str, Any]:
        d = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
        return dict(d)

    # -- KubeAPI -------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        res = self._res(kind)
        try:
            kw = {"namespace": namespace} if KINDS[kind][1] else {}
            return self._to_dict(self._call(f"get {kind} {name}", self._client.get, res, name, **kw))
        except KubeAPIError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        res = self._res(kind)
        kw: dict[str, Any] = {}
        if KINDS[kind][1]:
            kw["namespace"] = namespace if namespace is not None else "*"
        if labels:
            kw["labels"] = labels

        def run() -> list[dict[str, Any]]:
            return [self._to_dict(o) for o in self._client.list(res, **kw)]

        try:
            return self._call(f"list {kind}", run)
        except KubeAPIError as exc:
            if exc.code == 404 and kind == "ClusterPolicy":
                return []  # CRD not installed: no GPU Operator
            raise

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        from lightkube import codecs

        kind = obj["kind"]
        self._res(kind)
        model = codecs.from_dict(obj)
        name = (obj.get("metadata") or {}).get("name", "")
        return self._to_dict(self._call(f"create {kind} {name}", self._client.create, model))

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        from lightkube import codecs

        kind = obj["kind"]
        self._res(kind)
        name = (obj.get("metadata") or {}).get("name", "")
        return self._to_dict(
            self._call(f"replace {kind} {name}", self._client.replace, codecs.from_dict(obj))
        )

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        from lightkube.types import CascadeType

        res = self._res(kind)
        kw: dict[str, Any] = {"cascade": CascadeType.BACKGROUND}
        if KINDS[kind][1]:
            kw["namespace"] = namespace
        try:
            self._call(f"delete {kind} {name}", self._client.delete, res, name, **kw)
            return True
        except KubeAPIError as exc:
            if exc.code == 404:
                return False
            raise

    def logs(self, pod: str, namespace: str, tail_lines: int | None = None) -> str:
        def run() -> str:
            return "".join(self._client.log(pod, namespace=namespace, tail_lines=tail_lines))

        return self._call(f"logs of pod {pod}", run)


def connect(kubeconfig: str | None = None, context: str | None = None) -> KubeAPI:
    return LightkubeAPI(kubeconfig, context)


def collect_cluster_objects(api: KubeAPI) -> dict[str, list[dict[str, Any]]]:
    """The objects the planner reads, trimmed to what it needs (also stored in snapshots)."""
    nodes = []
    for n in api.list("Node"):
        meta = n.get("metadata") or {}
        status = n.get("status") or {}
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {k: meta[k] for k in ("name", "labels", "annotations") if k in meta},
                "status": {k: status[k] for k in ("nodeInfo", "allocatable", "capacity") if k in status},
            }
        )
    rcs = [
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": (rc.get("metadata") or {}).get("name", "")},
            "handler": rc.get("handler", ""),
        }
        for rc in api.list("RuntimeClass")
    ]
    daemonsets = []
    for ds in api.list("DaemonSet"):
        tmpl = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        images = " ".join(str(c.get("image", "")) for c in tmpl.get("containers") or [])
        name = str((ds.get("metadata") or {}).get("name", ""))
        if "k8s-device-plugin" in images or "nvidia-device-plugin" in name:
            ds = dict(ds)
            ds.setdefault("apiVersion", "apps/v1")
            ds.setdefault("kind", "DaemonSet")
            daemonsets.append(ds)
    try:
        policies = api.list("ClusterPolicy")
    except KubeAPIError:
        policies = []
    for p in policies:
        p.setdefault("apiVersion", "nvidia.com/v1")
        p.setdefault("kind", "ClusterPolicy")
    return {"nodes": nodes, "runtimeClasses": rcs, "daemonSets": daemonsets, "clusterPolicies": policies}
