"""The snapshot agent's objects: Namespace, RBAC, Job (pure builders, after
NVIDIA/aicr ``pkg/k8s/agent/job.go``).

The agent Job runs ``gpuctk snapshot`` on a node and writes the result into a ConfigMap.
Two ways to give it the driver without the other's downside:

* ``runtime_class``: ``runtimeClassName`` + ``NVIDIA_VISIBLE_DEVICES=all`` — the nvidia
  runtime gives ``nvidia-smi`` without consuming a device-plugin GPU;
* ``require_gpu``: a ``nvidia.com/gpu: 1`` limit — works anywhere the device plugin runs,
  but pends when every GPU is allocated.

They are mutually exclusive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gpuctk import __version__
from gpuctk.errors import UsageError

APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "gpuctk"
NODE_READER_ROLE = "gpuctk-node-reader"
AGENT_MODE_ENV = "GPUCTK_AGENT_MODE"
HOST_ROOT = "/host"
DEFAULT_IMAGE = f"ghcr.io/gpuctk/gpuctk:{__version__}"
MUTUAL_EXCLUSION = (
    "--require-gpu and --runtime-class are mutually exclusive: use --runtime-class NAME (e.g. nvidia), "
    "which gives the agent nvidia-smi without consuming a GPU, or --require-gpu alone where no GPU "
    "RuntimeClass exists"
)
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class AgentOptions:
    namespace: str = "gpuctk"
    job_name: str = "gpuctk-snapshot"
    service_account: str = "gpuctk"
    configmap: str = "gpuctk-snapshot"
    image: str = DEFAULT_IMAGE
    image_pull_secrets: list[str] = field(default_factory=list)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] | None = None  # None = tolerate everything
    runtime_class: str = ""
    require_gpu: bool = False
    privileged: bool = True
    timeout: float = 300.0
    cleanup: bool = True
    output_format: str = "yaml"

    def validate(self) -> None:
        if self.runtime_class and self.require_gpu:
            raise UsageError(MUTUAL_EXCLUSION)
        for what, value in (
            ("namespace", self.namespace),
            ("job name", self.job_name),
            ("service account", self.service_account),
            ("ConfigMap name", self.configmap),
        ):
            if not value or len(value) > 63 or not _DNS1123.match(value):
                raise UsageError(f"invalid {what} {value!r}: must be a DNS-1123 label")
        if self.runtime_class and not _DNS1123.match(self.runtime_class):
            raise UsageError(f"invalid RuntimeClass name {self.runtime_class!r}")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if not self.image:
            raise UsageError("--image must not be empty")

    @property
    def configmap_uri(self) -> str:
        return f"cm://{self.namespace}/{self.configmap}"


def parse_toleration(text: str) -> dict[str, Any]:
    """``key=value:Effect``, ``key:Effect``, ``key`` or ``*`` (tolerate everything)."""
    text = text.strip()
    if text in ("*", ""):
        return {"operator": "Exists"}
    effect = ""
    if ":" in text:
        text, effect = text.rsplit(":", 1)
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise UsageError(
                f"invalid toleration effect {effect!r} (NoSchedule, PreferNoSchedule or NoExecute)"
            )
    tol: dict[str, Any]
    if "=" in text:
        key, value = text.split("=", 1)
        tol = {"key": key, "operator": "Equal", "value": value}
    else:
        tol = {"key": text, "operator": "Exists"}
    if effect:
        tol["effect"] = effect
    return tol


def parse_node_selector(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in part:
                raise UsageError(f"invalid node selector {part!r}: expected key=value")
            k, v = part.split("=", 1)
            out[k] = v
    return out


def _labels(component: str) -> dict[str, str]:
    return {
        APP_LABEL: APP_NAME,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "gpuctk",
    }


def build_namespace(opts: AgentOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": opts.namespace, "labels": _labels("agent")},
    }


def build_rbac(opts: AgentOptions) -> list[dict[str, Any]]:
    """ServiceAccount, Role (its ConfigMap + pods), node-reader ClusterRole, and bindings."""
    ns, sa = opts.namespace, opts.service_account
    labels = _labels("agent")
    role_name = f"{sa}-agent"
    # Per namespace, so one agent's cleanup never removes another's permissions.
    cr_name = crb_name = f"{NODE_READER_ROLE}-{ns}"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role_name, "namespace": ns, "labels": labels},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["create", "get", "update", "patch"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role_name, "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cr_name, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["get", "list"]},
                {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"], "verbs": ["get", "list"]},
                {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list"]},
                {"apiGroups": ["nvidia.com"], "resources": ["clusterpolicies"], "verbs": ["get", "list"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": crb_name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr_name},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        },
    ]


def build_env(opts: AgentOptions) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": AGENT_MODE_ENV, "value": "true"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if opts.runtime_class:
        # No GPU is requested: the runtime class's handler gives driver access for "all".
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"})
        env.append({"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"})
    return env


def build_pod_spec(opts: AgentOptions) -> dict[str, Any]:
    args = ["snapshot", "--output", opts.configmap_uri, "--format", opts.output_format]
    container: dict[str, Any] = {
        "name": "gpuctk",
        "image": opts.image,
        "command": ["gpuctk"],
        "args": args,
        "env": build_env(opts),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    resources: dict[str, Any] = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    if opts.require_gpu:
        resources["limits"]["nvidia.com/gpu"] = "1"
    container["resources"] = resources
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    spec: dict[str, Any] = {
        "serviceAccountName": opts.service_account,
        "restartPolicy": "Never",
        "tolerations": opts.tolerations if opts.tolerations is not None else [{"operator": "Exists"}],
        "containers": [container],
        "volumes": volumes,
    }
    if opts.privileged:
        # Read the node's CDI specs, engine configs and device nodes: host / read-only.
        container["args"] += ["--host-root", HOST_ROOT]
        container["securityContext"] = {"privileged": True, "runAsUser": 0}
        container["volumeMounts"].append({"name": "host-root", "mountPath": HOST_ROOT, "readOnly": True})
        volumes.append({"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}})
        spec["hostPID"] = True
    else:
        spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    if opts.node_selector:
        spec["nodeSelector"] = dict(opts.node_selector)
    if opts.runtime_class:
        spec["runtimeClassName"] = opts.runtime_class
    if opts.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    return spec


def build_job(opts: AgentOptions) -> dict[str, Any]:
    labels = _labels("agent")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": opts.job_name, "namespace": opts.namespace, "labels": labels},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "activeDeadlineSeconds": max(int(opts.timeout) + 60, 120),
            "template": {"metadata": {"labels": labels}, "spec": build_pod_spec(opts)},
        },
    }


def result_configmap(namespace: str, name: str, document: str, fmt: str, timestamp: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**_labels("snapshot"), "app.kubernetes.io/version": __version__},
        },
        "data": {f"snapshot.{fmt}": document, "format": fmt, "timestamp": timestamp},
    }


def parse_configmap_uri(uri: str) -> tuple[str, str]:
    """``cm://namespace/name`` -> (namespace, name)."""
    if not uri.startswith("cm://"):
        raise UsageError(f"not a ConfigMap URI: {uri!r} (expected cm://NAMESPACE/NAME)")
    parts = uri[len("cm://") :].split("/")
    if len(parts) != 2 or not all(_DNS1123.match(p) for p in parts):
        raise UsageError(f"invalid ConfigMap URI {uri!r} (expected cm://NAMESPACE/NAME)")
    return parts[0], parts[1]
