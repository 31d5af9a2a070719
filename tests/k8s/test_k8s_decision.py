"""`k8s plan` on containerd < 1.7 with CDI wanted takes the nvidia runtime's annotation path
(the design of NVIDIA/gpu-operator PR #1285), never "set cdi.enabled=false"."""

from __future__ import annotations

from typing import Any

from gpuctk.k8s.facts import facts_from_document
from gpuctk.k8s.manifests import build
from gpuctk.k8s.planner import plan


def _doc(cdi_node: bool = False, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "metadata": {"name": "old", "labels": {"nvidia.com/gpu.present": "true"}},
        "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20~ds1-1"}},
    }
    if cdi_node:
        node["metadata"]["annotations"] = {"gpuctk.nvidia.com/cdi-enabled": "true"}
    doc: dict[str, Any] = {
        "nodes": [node],
        "runtimeClasses": [{"metadata": {"name": "nvidia"}, "handler": "nvidia"}],
    }
    if policy is not None:
        doc["clusterPolicies"] = [{"metadata": {"name": "cp"}, "spec": policy}]
    return doc


def test_cdi_enabled_on_16_is_the_nvidia_runtime_cdi_path() -> None:
    g = plan(facts_from_document(_doc(cdi_node=True)))["groups"][0]
    assert g["row"] == 5 and g["decision"]["path"] == "nvidia-runtime-cdi"
    assert g["decision"]["nvidia_default"] is True
    assert g["device_plugin"]["recommended_strategy"] == ["envvar", "cdi-annotations"]
    assert g["device_plugin"]["annotation_prefix"] == "nvidia.cdi.k8s.io/"
    assert (
        g["gpu_workload"]["runtimeClassName"] is None and g["gpu_workload"]["injected_by"] == "nvidia-runtime"
    )
    assert g["toolkit"]["NVIDIA_RUNTIME_SET_AS_DEFAULT"] == "true"
    assert g["toolkit"]["NVIDIA_CONTAINER_RUNTIME_MODES_CDI_ANNOTATION_PREFIXES"] == "nvidia.cdi.k8s.io/"
    assert not any("cdi.enabled=false" in w for w in g["warnings"])


def test_operator_cdi_on_16_says_what_to_set() -> None:
    g = plan(facts_from_document(_doc(policy={"cdi": {"enabled": True}})))["groups"][0]
    assert g["decision"]["path"] == "nvidia-runtime-cdi"
    (w,) = [w for w in g["warnings"] if "no fallback" in w]
    assert "NVIDIA_RUNTIME_SET_AS_DEFAULT=true" in w and "CDI_ANNOTATION_PREFIX=nvidia.cdi.k8s.io/" in w
    assert "set cdi.enabled=false" not in w
    # the operator's own device plugin (cdi-annotations,cdi-cri + cdi.k8s.io/) reaches nothing here
    assert g["gpu_workload"]["injected_by"] == "none"


def test_operator_cdi_off_on_16_is_legacy() -> None:
    g = plan(facts_from_document(_doc(policy={"cdi": {"enabled": False}})))["groups"][0]
    assert g["decision"]["path"] == "legacy" and g["gpu_workload"]["runtimeClassName"] == "nvidia"


def test_manifests_for_the_16_cdi_path() -> None:
    p = plan(facts_from_document(_doc(cdi_node=True)))
    docs = {d["name"]: d["content"] for d in build(p)}
    values = docs["device-plugin-values"]
    assert values["deviceListStrategy"] == "envvar,cdi-annotations"
    assert {"name": "CDI_ANNOTATION_PREFIX", "value": "nvidia.cdi.k8s.io/"} in values["env"]
    env = {e["name"]: e["value"] for e in docs["toolkit-env"]["toolkit"]["env"]}
    assert env["NVIDIA_CONTAINER_RUNTIME_MODE"] == "cdi"
