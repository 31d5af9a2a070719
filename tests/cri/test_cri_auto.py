"""containerd 1.6 after ``gpuctk install --cdi auto``, driven through its CRI plugin the way a
kubelet + NVIDIA device plugin would (the row-5 decision: no native CDI, so the nvidia
runtime is the default runtime, in cdi mode, and injects what ``nvidia.cdi.k8s.io/``
annotations name; GPU pods carry no runtimeClassName)."""

from __future__ import annotations

import json

import pytest

from .node import HANDLER, CRINode, effective_cri_config
from .scenarios import allocate, apply_allocation, pod_request, probe, target_gpu

pytestmark = pytest.mark.integration

PREFIX = "nvidia.cdi.k8s.io/"


def _decision(node: CRINode) -> dict:
    with open(node.status_file) as f:
        return json.load(f)["decision"]


def test_install_cdi_auto_decides_and_configures_the_16_path(auto_node: CRINode) -> None:
    d = _decision(auto_node)
    assert (d["row"], d["path"], d["nvidia_default"]) == (5, "nvidia-runtime-cdi", True)
    assert d["needs_runtime_class"] is False
    cri = effective_cri_config(auto_node.containerd.config_path)
    ctd = cri["containerd"]
    assert ctd["default_runtime_name"] == HANDLER
    assert PREFIX + "*" in ctd["runtimes"][HANDLER]["container_annotations"]
    assert "runc" in ctd["runtimes"]  # plain runc pods still have their handler
    assert "enable_cdi" not in json.dumps(d) or d["enable_cdi"] is False
    assert auto_node.installed["nvidia-container-runtime"]["mode"] == "cdi"
    assert auto_node.installed["nvidia-container-runtime"]["modes"]["cdi"]["annotation-prefixes"] == [PREFIX]


def test_annotated_pod_without_runtime_class_sees_exactly_its_gpu(auto_node: CRINode) -> None:
    d = _decision(auto_node)
    auto_node.set_toolkit_config()
    gpu = target_gpu(auto_node.gpu)
    # the device plugin configured as decided: envvar,cdi-annotations with the nvidia prefix
    req = apply_allocation(
        pod_request("auto-planned", ""),
        allocate(d["device_list_strategy"], [gpu["uuid"]], prefix=d["cdi_annotation_prefix"]),
    )
    assert any(k.startswith(PREFIX) for k in req.annotations)
    seen = probe(auto_node, req)
    assert seen.raw.exit_code == 0, seen.explain() + auto_node.diagnostics()
    assert seen.gpu_devices == auto_node.gpu.gpu_nodes([gpu]), seen.explain() + auto_node.diagnostics()
    assert seen.has_driver(auto_node.gpu), seen.explain()


def test_annotation_alone_is_what_injects(auto_node: CRINode) -> None:
    """cdi-annotations only (no NVIDIA_VISIBLE_DEVICES): the annotation reached the runtime
    through container_annotations and named exactly that GPU."""
    auto_node.set_toolkit_config()
    gpu = auto_node.gpu.gpus[0]
    req = apply_allocation(
        pod_request("auto-ann", ""), allocate(["cdi-annotations"], [gpu["uuid"]], prefix=PREFIX)
    )
    assert "NVIDIA_VISIBLE_DEVICES" not in req.envs
    seen = probe(auto_node, req)
    assert seen.raw.exit_code == 0, seen.explain() + auto_node.diagnostics()
    assert seen.gpu_devices == auto_node.gpu.gpu_nodes([gpu]), seen.explain() + auto_node.diagnostics()


def test_pod_without_a_request_sees_no_gpu(auto_node: CRINode) -> None:
    auto_node.set_toolkit_config()
    seen = probe(auto_node, pod_request("auto-none", ""))
    assert seen.raw.exit_code == 0, seen.explain() + auto_node.diagnostics()
    assert seen.devices == set() and seen.libraries == set(), seen.explain()


def test_plain_runc_pod_still_runs(auto_node: CRINode) -> None:
    auto_node.set_toolkit_config()
    seen = probe(auto_node, pod_request("auto-runc", "runc"))
    assert seen.raw.exit_code == 0, seen.explain() + auto_node.diagnostics()
    assert seen.devices == set(), seen.explain()


def test_management_path_runtime_class_nvidia_sees_every_gpu(auto_node: CRINode) -> None:
    """The snapshot agent's --runtime-class recipe on this node: RuntimeClass nvidia +
    NVIDIA_VISIBLE_DEVICES=all, no device-plugin GPU."""
    from gpuctk.k8s.agent import AgentOptions, build_pod_spec

    auto_node.set_toolkit_config()
    spec = build_pod_spec(AgentOptions(runtime_class="nvidia", privileged=False))
    req = pod_request("auto-mgmt", HANDLER)
    req.envs.update({e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e})
    assert req.envs.get("NVIDIA_VISIBLE_DEVICES") == "all"
    seen = probe(auto_node, req)
    assert seen.raw.exit_code == 0, seen.explain() + auto_node.diagnostics()
    assert seen.gpu_devices == auto_node.gpu.gpu_nodes(), seen.explain() + auto_node.diagnostics()
