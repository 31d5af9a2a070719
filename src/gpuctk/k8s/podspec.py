"""Sandbox GPU pods that follow the plan (docs/kubernetes.md, "GPU pods and management pods").

On native-CDI nodes a GPU pod carries only ``nvidia.com/gpu: N`` (no runtimeClassName,
as OpenShell does after PR #503); on legacy nodes it adds the RuntimeClass. A
management pod gets ``nvidia-smi`` without consuming a GPU by the group's method.
"""

from __future__ import annotations

import re
from typing import Any

from gpuctk.errors import GpuctkError, UsageError
from gpuctk.k8s.planner import NRI_ANNOTATION_PREFIX

DEFAULT_IMAGE = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"


def _choose_group(plan: dict[str, Any], group: int | None, management: bool) -> tuple[dict[str, Any], bool]:
    groups = plan["groups"]
    if not groups:
        raise GpuctkError(
            "no GPU nodes in the plan: no node has label nvidia.com/gpu.present=true or allocatable "
            "nvidia.com/gpu; install the NVIDIA device plugin and check `gpuctk k8s check-gpu`"
        )
    if group is not None:
        if not 1 <= group <= len(groups):
            raise UsageError(f"--group {group}: the plan has {len(groups)} group(s)")
        return groups[group - 1], len(groups) > 1
    if len(groups) > 1:
        key = "management" if management else "gpu_workload"
        shapes = {repr(sorted((k, repr(v)) for k, v in g[key].items() if k not in ("note",))) for g in groups}
        if len(shapes) > 1:
            raise UsageError(
                f"GPU nodes fall into {len(groups)} groups that need different pod specs: pass "
                "--group N (see `gpuctk k8s plan`)"
            )
    return groups[0], False


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def build_pod(
    plan: dict[str, Any],
    *,
    gpus: int | None = None,
    management: bool = False,
    image: str = DEFAULT_IMAGE,
    name: str = "gpu-sandbox",
    namespace: str | None = None,
    group: int | None = None,
    command: list[str] | None = None,
    sandbox_runtime_class: str | None = None,
) -> dict[str, Any]:
    """``sandbox_runtime_class`` (e.g. ``gvisor``, ``kata``) is honoured where injection does not
    depend on the nvidia runtime handler, as OpenShell honours a template's runtime class."""
    if (gpus is None) == (not management):
        raise UsageError("give exactly one of --gpus N or --management")
    if gpus is not None and gpus < 1:
        raise UsageError("--gpus must be at least 1")
    # the API server would refuse these at apply time; say so now, naming the flag
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise UsageError(f"--name: invalid pod name {name!r} (lowercase letters, digits, '-' and '.')")
    if namespace is not None and (len(namespace) > 63 or not _DNS1123_LABEL.match(namespace)):
        raise UsageError(f"--namespace: invalid namespace {namespace!r} (a DNS-1123 label)")
    g, pin = _choose_group(plan, group, management)
    ctr: dict[str, Any] = {"name": "main", "image": image, "command": command or ["nvidia-smi", "-L"]}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [ctr]}
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "gpuctk"}}
    if namespace:
        meta["namespace"] = namespace
    if gpus is not None:
        gw = g["gpu_workload"]
        if gw["injected_by"] == "none":
            raise GpuctkError(
                f"{g['runtime']} {g['version']} nodes: the device plugin's current strategy injects "
                "nothing there: " + "; ".join(g["warnings"])
            )
        ctr["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        if gw["runtimeClassName"]:
            spec["runtimeClassName"] = gw["runtimeClassName"]
    else:
        m = g["management"]
        method = m["method"]
        if method == "none":
            raise GpuctkError(f"no management-only path on {g['runtime']} nodes: {m['note']}")
        if m.get("runtimeClassName"):
            spec["runtimeClassName"] = m["runtimeClassName"]
        if m.get("env"):
            ctr["env"] = [{"name": k, "value": v} for k, v in m["env"].items()]
            ctr["env"].append({"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"})
        if method == "nri-annotation":
            meta["annotations"] = {NRI_ANNOTATION_PREFIX + ctr["name"]: next(iter(m["annotations"].values()))}
        if method == "gpu-request":
            ctr["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    if sandbox_runtime_class:
        if spec.get("runtimeClassName"):
            raise GpuctkError(
                f"{g['runtime']} {g['version']} nodes inject through RuntimeClass {spec['runtimeClassName']!r} "
                f"here, so a sandbox RuntimeClass {sandbox_runtime_class!r} would bypass it: use native-CDI nodes "
                "(gpuctk k8s plan) or configure the sandbox handler with the GPU runtime"
            )
        spec["runtimeClassName"] = sandbox_runtime_class
    if pin:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": list(g["nodes"]),
                                }
                            ]
                        }
                    ]
                }
            }
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def check_gpu(facts: dict[str, Any], plan: dict[str, Any]) -> tuple[bool, list[str]]:
    """Can GPU sandboxes be scheduled? Some node must have allocatable nvidia.com/gpu > 0.

    A RuntimeClass is required only where the plan's injection path needs one.
    """
    nodes = facts.get("nodes") or []
    with_gpu = [n for n in nodes if int(n.get("allocatable_gpu") or 0) > 0]
    lines: list[str] = []
    ok = True
    if with_gpu:
        total = sum(int(n["allocatable_gpu"]) for n in with_gpu)
        lines.append(
            f"ok: {len(with_gpu)} node(s) with allocatable nvidia.com/gpu ({total} GPUs): "
            + ", ".join(n["name"] for n in with_gpu)
        )
    else:
        ok = False
        labelled = [n["name"] for n in nodes if n.get("gpu_present")]
        if labelled:
            lines.append(
                f"error: node(s) {', '.join(labelled)} are labelled nvidia.com/gpu.present=true but none has "
                "allocatable nvidia.com/gpu: check the NVIDIA device plugin pods on them "
                "(kubectl -n <ns> logs ds/nvidia-device-plugin…) and that the driver works (`gpuctk doctor`)"
            )
        else:
            lines.append(
                "error: no node has allocatable nvidia.com/gpu: install the NVIDIA driver and device plugin "
                "(values from `gpuctk k8s manifests`), then run `gpuctk k8s check-gpu` again"
            )
    rcs = set(plan.get("runtime_classes") or [])
    for g in plan.get("groups") or []:
        rc = g["gpu_workload"]["runtimeClassName"]
        where = f"{g['runtime']} {g['version']} ({', '.join(g['nodes'])})"
        if rc and rc not in rcs:
            ok = False
            lines.append(
                f"error: {where}: GPU pods need RuntimeClass {rc!r}, which does not exist: apply "
                "`gpuctk k8s manifests --only runtimeclasses` (or make nvidia the node's default runtime)"
            )
        elif rc:
            lines.append(f"ok: {where}: GPU pods use runtimeClassName {rc}")
        elif g["gpu_workload"]["injected_by"] == "none":
            ok = False
            lines.append(
                f"error: {where}: the device plugin's strategy injects nothing here: "
                + "; ".join(g["warnings"])
            )
        else:
            lines.append(
                f"ok: {where}: GPU pods need no RuntimeClass ({g['gpu_workload']['injected_by']} injection)"
            )
    return ok, lines
