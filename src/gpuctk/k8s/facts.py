"""Cluster facts: raw Kubernetes objects -> the small, plain dict the planner reads.

Input is whatever the API (or a file) gives: Nodes, RuntimeClasses, DaemonSets and GPU
Operator ClusterPolicies as dicts. Output keeps only what the decision needs, so a
``--from FILE`` plan and a live plan run the same pure code.
"""

from __future__ import annotations

from typing import Any

from gpuctk.errors import GpuctkError

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
# Per-node override of "is CDI enabled in this node's runtime" (e.g. set from a node
# snapshot). Values "true"/"false".
CDI_ENABLED_ANNOTATION = "gpuctk.nvidia.com/cdi-enabled"

_PLUGIN_ENV_KEYS = (
    "DEVICE_LIST_STRATEGY",
    "DEVICE_ID_STRATEGY",
    "CDI_ANNOTATION_PREFIX",
    "NVIDIA_CDI_HOOK_PATH",
    "NVIDIA_DRIVER_ROOT",
    "NVIDIA_DEV_ROOT",
    "MIG_STRATEGY",
    "CDI_ENABLED",
    "PASS_DEVICE_SPECS",
)


def _quantity_int(v: Any) -> int:
    try:
        return int(str(v).strip() or 0)
    except ValueError:
        return 0


def _truthy(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    return None


def node_facts(node: dict[str, Any]) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    allocatable = status.get("allocatable") or {}
    capacity = status.get("capacity") or {}
    info = status.get("nodeInfo") or {}
    return {
        "name": str(meta.get("name") or "<unnamed>"),
        "runtime_version": str(info.get("containerRuntimeVersion") or ""),
        "kubelet_version": str(info.get("kubeletVersion") or ""),
        "os_image": str(info.get("osImage") or ""),
        "kernel": str(info.get("kernelVersion") or ""),
        "labels": dict(labels),
        "allocatable_gpu": _quantity_int(allocatable.get(GPU_RESOURCE, 0)),
        "capacity_gpu": _quantity_int(capacity.get(GPU_RESOURCE, 0)),
        "gpu_present": str(labels.get(GPU_PRESENT_LABEL, "")).lower() == "true",
        "cdi_enabled": _truthy(annotations.get(CDI_ENABLED_ANNOTATION)),
    }


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if isinstance(item, dict) and "name" in item and "value" in item:
            env[str(item["name"])] = str(item["value"])
    return env


def device_plugin_facts(daemonsets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The NVIDIA device plugin DaemonSet's settings, from its container env."""
    for ds in daemonsets:
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        for c in containers:
            image = str(c.get("image", ""))
            name = str((ds.get("metadata") or {}).get("name", ""))
            if "k8s-device-plugin" not in image and "nvidia-device-plugin" not in name:
                continue
            env = _container_env(c)
            return {
                "name": name,
                "namespace": (ds.get("metadata") or {}).get("namespace", ""),
                "image": image,
                "env": {k: env[k] for k in _PLUGIN_ENV_KEYS if k in env},
                "runtime_class": (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                    "runtimeClassName"
                ),
            }
    return None


def cluster_policy_facts(policies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A GPU Operator ClusterPolicy, with the operator's defaults filled (NVIDIA/gpu-operator
    ``api/nvidia/v1/clusterpolicy_types.go``: cdi.enabled defaults to true, nriPluginEnabled to false)."""
    if not policies:
        return None
    spec = policies[0].get("spec") or {}
    cdi = spec.get("cdi") or {}
    toolkit = spec.get("toolkit") or {}
    operator = spec.get("operator") or {}
    tk_env = {
        str(e.get("name")): str(e.get("value", "")) for e in toolkit.get("env") or [] if isinstance(e, dict)
    }
    enabled = _truthy(cdi.get("enabled"))
    tk_enabled = _truthy(toolkit.get("enabled"))
    return {
        "name": (policies[0].get("metadata") or {}).get("name", ""),
        "cdi_enabled": True if enabled is None else enabled,
        "nri_plugin_enabled": bool(_truthy(cdi.get("nriPluginEnabled"))),
        "runtime_class": str(operator.get("runtimeClass") or "nvidia"),
        "toolkit_enabled": True if tk_enabled is None else tk_enabled,
        "toolkit_install_dir": str(toolkit.get("installDir") or "/usr/local/nvidia"),
        "toolkit_env": tk_env,
    }


def facts_from_objects(
    nodes: list[dict[str, Any]],
    runtime_classes: list[dict[str, Any]] | None = None,
    daemonsets: list[dict[str, Any]] | None = None,
    cluster_policies: list[dict[str, Any]] | None = None,
    node_overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    nf = [node_facts(n) for n in nodes]
    for n in nf:
        over = (node_overrides or {}).get(n["name"])
        if isinstance(over, dict) and over.get("cdi_enabled") is not None:
            n["cdi_enabled"] = bool(over["cdi_enabled"])
    rcs = [
        {"name": str((rc.get("metadata") or {}).get("name") or ""), "handler": str(rc.get("handler") or "")}
        for rc in runtime_classes or []
    ]
    return {
        "nodes": nf,
        "runtime_classes": rcs,
        "device_plugin": device_plugin_facts(daemonsets or []),
        "cluster_policy": cluster_policy_facts(cluster_policies or []),
    }


# Fields the facts read, and the JSON type each must have when present.
_SHAPES: dict[str, tuple[tuple[str, type], ...]] = {
    "nodes": (
        ("metadata", dict),
        ("metadata.name", str),
        ("metadata.labels", dict),
        ("metadata.annotations", dict),
        ("status", dict),
        ("status.nodeInfo", dict),
        ("status.nodeInfo.containerRuntimeVersion", str),
        ("status.allocatable", dict),
        ("status.capacity", dict),
    ),
    "runtimeClasses": (("metadata", dict), ("metadata.name", str), ("handler", str)),
    "daemonSets": (
        ("metadata", dict),
        ("spec", dict),
        ("spec.template", dict),
        ("spec.template.spec", dict),
        ("spec.template.spec.containers", list),
    ),
    "clusterPolicies": (
        ("metadata", dict),
        ("spec", dict),
        ("spec.cdi", dict),
        ("spec.toolkit", dict),
        ("spec.operator", dict),
        ("spec.toolkit.env", list),
    ),
}


_TYPE_NAMES: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}


def _check_shapes(key: str, items: list[dict[str, Any]], source: str) -> None:
    for i, item in enumerate(items):
        for path, typ in _SHAPES[key]:
            value: Any = item
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and not isinstance(value, typ):
                want = _TYPE_NAMES[typ]
                raise GpuctkError(f"{source}: {key}[{i}].{path}: expected {want}")
            if isinstance(value, list) and not all(isinstance(x, dict) for x in value):
                raise GpuctkError(f"{source}: {key}[{i}].{path}: expected a list of mappings")
        if key == "daemonSets":
            containers: list[dict[str, Any]] = (
                ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
            ).get("containers") or []
            for j, c in enumerate(containers):
                env = c.get("env")
                if env is not None and not (isinstance(env, list) and all(isinstance(e, dict) for e in env)):
                    raise GpuctkError(
                        f"{source}: {key}[{i}].spec.template.spec.containers[{j}].env: "
                        "expected a list of mappings"
                    )


_KIND_KEYS = {
    "Node": "nodes",
    "RuntimeClass": "runtimeClasses",
    "DaemonSet": "daemonSets",
    "ClusterPolicy": "clusterPolicies",
}


def facts_from_document(doc: Any, source: str = "<input>") -> dict[str, Any]:
    """Facts from a ``--from`` file: a gpuctk snapshot (its ``kubernetes.cluster`` part), a
    dict with ``nodes``/``runtimeClasses``/``daemonSets``/``clusterPolicies`` lists, or a
    ``kubectl get … -o yaml`` List."""
    if not isinstance(doc, dict):
        raise GpuctkError(f"{source}: expected a mapping at the top level")
    if isinstance(doc.get("kubernetes"), dict) and isinstance(doc["kubernetes"].get("cluster"), dict):
        doc = doc["kubernetes"]["cluster"]
    elif doc.get("kind") == "GpuctkSnapshot":
        raise GpuctkError(
            f"{source}: kubernetes.cluster: this snapshot has no cluster data (taken outside a "
            "cluster); use `gpuctk snapshot --agent` or run it in a pod"
        )
    if doc.get("kind") == "List" or ("items" in doc and "nodes" not in doc):
        grouped: dict[str, list[dict[str, Any]]] = {v: [] for v in _KIND_KEYS.values()}
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise GpuctkError(f"{source}: items: expected a list of objects")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise GpuctkError(f"{source}: items[{i}]: expected a mapping")
            key = _KIND_KEYS.get(str(item.get("kind", "")))
            if key:
                grouped[key].append(item)
        doc = grouped
    lists: dict[str, list[dict[str, Any]]] = {}
    for key in _KIND_KEYS.values():
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise GpuctkError(f"{source}: {key}: expected a list of objects")
        _check_shapes(key, value, source)
        lists[key] = value
    if not lists["nodes"]:
        raise GpuctkError(f"{source}: nodes: no Node objects found")
    overrides = doc.get("nodeFacts") or {}
    if not isinstance(overrides, dict):
        raise GpuctkError(f"{source}: nodeFacts: expected a mapping of node name to facts")
    return facts_from_objects(
        lists["nodes"], lists["runtimeClasses"], lists["daemonSets"], lists["clusterPolicies"], overrides
    )
