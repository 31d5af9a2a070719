"""Planner on cluster fixtures: every row of the decision table (docs/kubernetes.md), mixed
clusters, distro version strings and NRI mode (tests/data/k8s/clusters/*.yaml)."""

from __future__ import annotations

import os

import pytest
import yaml

from gpuctk.errors import GpuctkError
from gpuctk.k8s.facts import facts_from_document
from gpuctk.k8s.planner import MANAGEMENT_DEVICE, plan, render_table
from support.fakekube import nvidia_node

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "k8s", "clusters")


def load_plan(name: str) -> dict:
    path = os.path.join(DATA, f"{name}.yaml")
    with open(path) as f:
        return plan(facts_from_document(yaml.safe_load(f), path))


# fixture -> (row, native CDI, GPU-pod runtimeClassName, injected by, management method, recommended strategy)
TABLE = {
    "row1-containerd2": (1, True, None, "native", "runtime-class", ["cdi-cri"]),
    "row1-k3s-containerd2": (1, True, None, "native", "runtime-class", ["cdi-cri"]),
    "row2-operator-ubuntu": (2, True, None, "native", "runtime-class", ["cdi-annotations", "cdi-cri"]),
    "row2-k3s-cdi-enabled": (2, True, None, "native", "runtime-class", ["cdi-cri"]),
    "row3-containerd17-cdi-off": (3, False, None, "none", "runtime-class", ["envvar"]),
    "row4-containerd171": (4, True, None, "native", "runtime-class", ["cdi-annotations"]),
    "row5-containerd16": (5, False, "nvidia", "nvidia-runtime", "runtime-class", ["envvar"]),
    "row6-crio": (6, True, None, "native", "runtime-class", ["cdi-cri"]),
    "row7-crio-hook": (7, False, None, "hook", "env", ["envvar"]),
    "row8-nri": (8, True, None, "native", "nri-annotation", ["cdi-annotations", "cdi-cri"]),
    "row9-docker": (9, False, "nvidia", "nvidia-runtime", "runtime-class", ["envvar"]),
    "row10-unknown": (10, False, None, "unknown", "none", []),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_decision_table_rows(name):
    row, native, rc, injected, mgmt, strategy = TABLE[name]
    p = load_plan(name)
    assert len(p["groups"]) == 1
    g = p["groups"][0]
    assert g["row"] == row
    assert g["native_cdi"] is native
    assert g["gpu_workload"]["runtimeClassName"] == rc
    assert g["gpu_workload"]["needs_runtime_class"] is (rc is not None)
    assert g["gpu_workload"]["injected_by"] == injected
    assert g["gpu_workload"]["resources"] == {"limits": {"nvidia.com/gpu": "N"}}
    assert g["management"]["method"] == mgmt
    assert g["device_plugin"]["recommended_strategy"] == strategy
    if any(s.startswith("cdi-") for s in strategy):
        assert g["device_plugin"]["annotation_prefix"] == "cdi.k8s.io/"
    assert not p["mixed_runtimes"]


def test_native_rows_manage_through_runtime_class_without_consuming_a_gpu():
    for name in ("row1-containerd2", "row2-operator-ubuntu", "row6-crio", "row5-containerd16", "row9-docker"):
        m = load_plan(name)["groups"][0]["management"]
        assert m["runtimeClassName"] == "nvidia"
        assert m["env"] == {"NVIDIA_VISIBLE_DEVICES": "all"}
        assert m["consumes_gpu"] is False


def test_nri_mode_uses_the_annotation_and_no_runtime_class():
    g = load_plan("row8-nri")["groups"][0]
    assert g["management"]["annotations"] == {"nvidia.cdi.k8s.io/container.<container>": MANAGEMENT_DEVICE}
    assert g["management"]["runtimeClassName"] is None
    assert g["toolkit"]["ENABLE_NRI_PLUGIN"] == "true"
    assert "CONTAINERD_RUNTIME_CLASS" not in g["toolkit"]


def test_hook_mode_crio_toolkit_settings():
    g = load_plan("row7-crio-hook")["groups"][0]
    assert g["toolkit"] == {"CDI_ENABLED": "false", "CRIO_CONFIG_MODE": "hook"}
    assert g["management"]["env"] == {"NVIDIA_VISIBLE_DEVICES": "all"}


def test_native_toolkit_settings():
    g = load_plan("row6-crio")["groups"][0]
    assert g["toolkit"] == {
        "CDI_ENABLED": "true",
        "NVIDIA_RUNTIME_SET_AS_DEFAULT": "false",
        "NVIDIA_CONTAINER_RUNTIME_MODE": "cdi",
        "CRIO_CONFIG_MODE": "config",
    }


def test_row3_warns_that_cdi_devices_are_dropped():
    g = load_plan("row3-containerd17-cdi-off")["groups"][0]
    assert any("silently dropped" in w and "enable_cdi" in w for w in g["warnings"])


def test_distro_version_strings_parse_leniently():
    g = load_plan("row2-operator-ubuntu")["groups"][0]
    assert (g["runtime"], g["version"]) == ("containerd", "1.7.12")
    assert g["runtime_versions"] == ["containerd://1.7.12-0ubuntu2~22.04.1"]
    g = load_plan("row2-k3s-cdi-enabled")["groups"][0]
    assert (g["runtime"], g["version"]) == ("containerd", "1.7.11")
    g = load_plan("row1-k3s-containerd2")["groups"][0]
    assert g["version"] == "2.0.4"


def test_mixed_runtimes_are_reported_per_group_with_a_warning():
    p = load_plan("mixed-containerd-crio")
    assert p["mixed_runtimes"] is True
    assert p["gpu_nodes"] == 3 and p["other_nodes"] == 1
    assert [(g["runtime"], g["row"], g["nodes"]) for g in p["groups"]] == [
        ("containerd", 1, ["gpu-c1", "gpu-c2"]),
        ("crio", 6, ["gpu-o1"]),
    ]
    assert any("mixed container runtimes" in w for w in p["warnings"])
    assert all(g["warnings"] and "mixed runtimes" in g["warnings"][0] for g in p["groups"])


def test_mixed_versions_of_one_runtime_get_separate_decisions():
    p = load_plan("mixed-containerd-versions")
    rows = {g["nodes"][0]: g for g in p["groups"]}
    assert rows["new"]["row"] == 1 and rows["new"]["gpu_workload"]["injected_by"] == "native"
    assert rows["old"]["row"] == 5 and rows["old"]["gpu_workload"]["injected_by"] == "none"
    assert any("injects nothing" in w for w in rows["old"]["warnings"])
    assert any("different injection paths" in w for w in p["warnings"])


def test_pre_2510_operator_prefix_needs_the_nvidia_runtime():
    g = load_plan("pre-2510-operator")["groups"][0]
    # nvidia.cdi.k8s.io/ annotations are only read by the nvidia runtime: pods need its class
    assert g["gpu_workload"]["injected_by"] == "nvidia-runtime"
    assert g["gpu_workload"]["runtimeClassName"] == "nvidia"


def test_missing_runtime_class_falls_back_to_a_gpu_request_for_management():
    facts = facts_from_document(
        {
            "nodes": [
                {
                    "metadata": {"name": "n", "labels": {"nvidia.com/gpu.present": "true"}},
                    "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://2.0.0"}},
                }
            ]
        }
    )
    g = plan(facts)["groups"][0]
    assert g["management"]["method"] == "gpu-request" and g["management"]["consumes_gpu"] is True
    assert any("pends when all GPUs are allocated" in w for w in g["warnings"])


def test_no_gpu_nodes():
    p = load_plan("no-gpu")
    assert p["groups"] == [] and "no GPU nodes" in p["warnings"][0]


def test_table_rendering_mentions_every_decision():
    text = render_table(load_plan("mixed-containerd-crio"))
    assert "[group 1] containerd 2.0.5" in text and "[group 2] crio 1.30.0" in text
    assert "no runtimeClassName" in text and "NVIDIA_VISIBLE_DEVICES=all" in text
    assert "WARNING: mixed container runtimes" in text


def test_facts_errors_name_the_field():
    with pytest.raises(GpuctkError, match=r"f.yaml: nodes: no Node objects found"):
        facts_from_document({"nodes": []}, "f.yaml")
    with pytest.raises(GpuctkError, match=r"f.yaml: runtimeClasses: expected a list"):
        facts_from_document({"nodes": [{}], "runtimeClasses": "nvidia"}, "f.yaml")
    with pytest.raises(GpuctkError, match="top level"):
        facts_from_document(["x"], "f.yaml")


def test_plan_from_a_snapshot_document():
    with open(os.path.join(DATA, "row6-crio.yaml")) as f:
        cluster = yaml.safe_load(f)
    snap = {"kind": "GpuctkSnapshot", "kubernetes": {"cluster": cluster}}
    assert plan(facts_from_document(snap))["groups"][0]["row"] == 6


def test_cdi_turned_off_on_a_native_runtime_is_legacy():
    def one(runtime, cdi):
        node = {
            "metadata": {
                "name": "n",
                "labels": {"nvidia.com/gpu.present": "true"},
                "annotations": {"gpuctk.nvidia.com/cdi-enabled": cdi},
            },
            "status": {"nodeInfo": {"containerRuntimeVersion": runtime}},
        }
        return plan(facts_from_document({"nodes": [node]}))["groups"][0]

    assert (one("containerd://2.0.5", "false")["row"], one("containerd://2.0.5", "true")["row"]) == (3, 1)
    assert (one("cri-o://1.29.1", "false")["row"], one("cri-o://1.29.1", "true")["row"]) == (7, 6)
    assert one("containerd://1.7.12", "true")["row"] == 2


def test_nri_mode_with_an_envvar_plugin_injects_nothing():
    # no RuntimeClass exists in NRI mode, so the nvidia runtime cannot read NVIDIA_VISIBLE_DEVICES
    doc = {
        "nodes": [nvidia_node("n1", "containerd://2.0.5", gpus=1)],
        "daemonSets": [
            {
                "metadata": {"name": "nvidia-device-plugin"},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "image": "k8s-device-plugin",
                                    "env": [{"name": "DEVICE_LIST_STRATEGY", "value": "envvar"}],
                                }
                            ]
                        }
                    }
                },
            }
        ],
        "clusterPolicies": [{"spec": {"cdi": {"nriPluginEnabled": True}}}],
    }
    g = plan(facts_from_document(doc))["groups"][0]
    assert g["row"] == 8 and g["gpu_workload"]["injected_by"] == "none"
    assert g["gpu_workload"]["runtimeClassName"] is None
    assert any("injects nothing" in w for w in g["warnings"])
