"""Manifests for the planned mode: RuntimeClasses, device-plugin Helm values, toolkit env.

Kubernetes objects are schema-validated before they are returned (``validate=True``);
Helm values are plain dicts for the NVIDIA charts (``k8s-device-plugin`` and
``gpu-operator``), not Kubernetes objects.
"""

from __future__ import annotations

from typing import Any

from gpuctk.errors import GpuctkError, UsageError
from gpuctk.k8s.validate import require_valid

RUNTIME_CLASSES = ("nvidia", "nvidia-cdi", "nvidia-legacy")
DEFAULT_HOOK_PATH = "/usr/bin/nvidia-cdi-hook"
MANAGED = {"app.kubernetes.io/managed-by": "gpuctk", "app.kubernetes.io/component": "gpu-runtime"}


def runtime_class(name: str, handler: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": name, "labels": dict(MANAGED)},
        "handler": handler or name,
    }


def runtime_class_names(group: dict[str, Any]) -> list[str]:
    """Which RuntimeClasses a group needs (as the GPU Operator creates them,
    NVIDIA/gpu-operator ``assets/pre-requisites/0200_runtime_class.yaml``)."""
    row = group["row"]
    if row in (7, 8):
        return []  # hook mode and NRI mode have no RuntimeClass
    if group["native_cdi"]:
        return list(RUNTIME_CLASSES)
    return ["nvidia"]


def device_plugin_values(
    group: dict[str, Any],
    *,
    driver_root: str = "/",
    hook_path: str = DEFAULT_HOOK_PATH,
    device_id_strategy: str = "uuid",
    mig_strategy: str = "none",
    runtime_class_name: str = "nvidia",
) -> dict[str, Any]:
    """Values for the ``nvidia-device-plugin`` chart in the group's planned mode."""
    strategy = group["device_plugin"]["recommended_strategy"]
    if not strategy:
        raise GpuctkError(f"no device-plugin mode planned for {group['runtime']} nodes ({group['case']})")
    values: dict[str, Any] = {
        "deviceListStrategy": ",".join(strategy),
        "deviceIDStrategy": device_id_strategy,
        "migStrategy": mig_strategy,
        "nvidiaDriverRoot": driver_root,
    }
    if any(s.startswith("cdi-") for s in strategy):
        values["cdi"] = {"nvidiaHookPath": hook_path}
    # The plugin itself needs NVML: give it the nvidia handler, except where no RuntimeClass
    # exists (OCI-hook CRI-O, NRI mode).
    if runtime_class_names(group):
        values["runtimeClassName"] = runtime_class_name
    if group["device_plugin"].get("annotation_prefix") not in (None, "cdi.k8s.io/"):
        # No Helm value for the prefix (NVIDIA/k8s-device-plugin
        # deployments/helm/nvidia-device-plugin/values.yaml): set the env on the plugin container.
        values["env"] = [
            {"name": "CDI_ANNOTATION_PREFIX", "value": group["device_plugin"]["annotation_prefix"]}
        ]
    return values


def toolkit_values(group: dict[str, Any]) -> dict[str, Any]:
    """The toolkit env for the group, as GPU Operator values (``toolkit.env``) plus the
    operator's CDI switches."""
    env = [{"name": k, "value": v} for k, v in group["toolkit"].items()]
    values: dict[str, Any] = {"toolkit": {"env": env}}
    if group["row"] != 10:
        values["cdi"] = {"enabled": group["native_cdi"], "nriPluginEnabled": group["row"] == 8}
    return values


def build(
    plan: dict[str, Any],
    group_index: int | None = None,
    *,
    only: tuple[str, ...] = (),
    driver_root: str = "/",
    hook_path: str = DEFAULT_HOOK_PATH,
    device_id_strategy: str = "uuid",
    mig_strategy: str = "none",
    validate: bool = True,
) -> list[dict[str, Any]]:
    """Documents ``{"name", "type" ("manifest"|"helm-values"), "content"}`` for the plan.

    ``only``: subset of ``runtimeclasses``, ``device-plugin-values``, ``toolkit-env``.
    """
    groups = plan["groups"]
    if not groups:
        raise GpuctkError("the plan has no GPU node groups: nothing to generate")
    if group_index is not None:
        if not 1 <= group_index <= len(groups):
            raise GpuctkError(f"--group {group_index}: the plan has {len(groups)} group(s)")
        chosen = [groups[group_index - 1]]
    elif (
        len(groups) > 1
        and len({(g["row"], tuple(g["device_plugin"]["recommended_strategy"])) for g in groups}) > 1
    ):
        raise GpuctkError(
            f"the plan has {len(groups)} node groups needing different modes: pass --group N "
            "(see `gpuctk k8s plan`)"
        )
    else:
        chosen = [groups[0]]
    want = set(only) or {"runtimeclasses", "device-plugin-values", "toolkit-env"}
    unknown = want - {"runtimeclasses", "device-plugin-values", "toolkit-env"}
    if unknown:
        raise UsageError(
            f"--only: unknown manifest kind(s) {', '.join(sorted(unknown))} "
            "(runtimeclasses, device-plugin-values, toolkit-env)"
        )
    g = chosen[0]
    docs: list[dict[str, Any]] = []
    if "runtimeclasses" in want:
        rc_name = (plan.get("gpu_operator") or {}).get("runtime_class") or "nvidia"
        for name in runtime_class_names(g):
            rc = runtime_class(rc_name if name == "nvidia" else name)
            docs.append({"name": f"runtimeclass-{rc['metadata']['name']}", "type": "manifest", "content": rc})
    if "device-plugin-values" in want:
        docs.append(
            {
                "name": "device-plugin-values",
                "type": "helm-values",
                "content": device_plugin_values(
                    g,
                    driver_root=driver_root,
                    hook_path=hook_path,
                    device_id_strategy=device_id_strategy,
                    mig_strategy=mig_strategy,
                ),
            }
        )
    if "toolkit-env" in want:
        docs.append({"name": "toolkit-env", "type": "helm-values", "content": toolkit_values(g)})
    if validate:
        require_valid([d["content"] for d in docs if d["type"] == "manifest"])
    return docs
