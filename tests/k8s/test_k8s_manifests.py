"""Manifests and pod specs for every planned mode; every Kubernetes object passes the
OpenAPI schema shipped by kubernetes-validate."""

from __future__ import annotations

import os

import pytest
import yaml

from gpuctk.errors import GpuctkError, UsageError
from gpuctk.k8s.agent import AgentOptions, build_job, build_namespace, build_rbac, result_configmap
from gpuctk.k8s.facts import facts_from_document
from gpuctk.k8s.manifests import build, device_plugin_values, runtime_class
from gpuctk.k8s.planner import plan
from gpuctk.k8s.podspec import build_pod, check_gpu
from gpuctk.k8s.validate import validate_all, validate_object

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "k8s", "clusters")
ROWS = sorted(f[:-5] for f in os.listdir(DATA) if f.startswith("row") and not f.startswith("row10"))


def facts_of(name):
    path = os.path.join(DATA, f"{name}.yaml")
    with open(path) as f:
        return facts_from_document(yaml.safe_load(f), path)


@pytest.mark.parametrize("name", ROWS)
def test_every_emitted_manifest_validates(name):
    p = plan(facts_of(name))
    docs = build(p)
    manifests = [d["content"] for d in docs if d["type"] == "manifest"]
    assert validate_all(manifests) == []
    pods = [build_pod(p, management=True, name="smi")]
    if p["groups"][0]["gpu_workload"]["injected_by"] == "none":  # row 3: broken until fixed
        with pytest.raises(GpuctkError, match="injects nothing"):
            build_pod(p, gpus=2)
    else:
        pods.append(build_pod(p, gpus=2, name="gpu"))
    assert validate_all(pods) == []
    values = {d["name"]: d["content"] for d in docs if d["type"] == "helm-values"}
    assert values["device-plugin-values"]["deviceListStrategy"] == ",".join(
        p["groups"][0]["device_plugin"]["recommended_strategy"]
    )


def test_agent_objects_validate():
    for opts in (
        AgentOptions(),
        AgentOptions(runtime_class="nvidia", node_selector={"nvidia.com/gpu.present": "true"}),
        AgentOptions(require_gpu=True, privileged=False, image_pull_secrets=["regcred"]),
    ):
        objs = [
            build_namespace(opts),
            *build_rbac(opts),
            build_job(opts),
            result_configmap(opts.namespace, opts.configmap, "a: 1\n", "yaml", "2026-01-01T00:00:00Z"),
        ]
        assert validate_all(objs) == []


def test_validation_catches_a_bad_manifest():
    bad = runtime_class("nvidia")
    del bad["handler"]
    assert validate_object(bad) == ["RuntimeClass/nvidia: (top): 'handler' is a required property"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"image": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
    }
    assert validate_object(pod) == ["Pod/p: spec.containers.0: 'name' is a required property"]


def test_native_cdi_values_match_the_openshell_shape():
    values = device_plugin_values(plan(facts_of("row1-containerd2"))["groups"][0], device_id_strategy="index")
    assert values == {
        "deviceListStrategy": "cdi-cri",
        "deviceIDStrategy": "index",
        "migStrategy": "none",
        "nvidiaDriverRoot": "/",
        "cdi": {"nvidiaHookPath": "/usr/bin/nvidia-cdi-hook"},
        "runtimeClassName": "nvidia",
    }


def test_runtime_classes_per_mode():
    def names(n):
        return [d["content"]["metadata"]["name"] for d in build(plan(facts_of(n)), only=("runtimeclasses",))]

    assert names("row1-containerd2") == ["nvidia", "nvidia-cdi", "nvidia-legacy"]
    assert names("row5-containerd16") == ["nvidia"]
    assert names("row8-nri") == []  # the operator deletes them in NRI mode
    assert names("row7-crio-hook") == []


def test_legacy_values_have_no_cdi_block_and_toolkit_env():
    docs = {d["name"]: d["content"] for d in build(plan(facts_of("row5-containerd16")))}
    assert docs["device-plugin-values"]["deviceListStrategy"] == "envvar"
    assert "cdi" not in docs["device-plugin-values"]
    assert docs["toolkit-env"]["cdi"] == {"enabled": False, "nriPluginEnabled": False}
    assert {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"} in docs["toolkit-env"]["toolkit"]["env"]


def test_mixed_cluster_needs_a_group():
    p = plan(facts_of("mixed-containerd-versions"))
    with pytest.raises(GpuctkError, match="pass --group N"):
        build(p)
    # group 2 is containerd 1.6 with a CDI device plugin: the nvidia runtime's annotation path
    values = build(p, 2, only=("device-plugin-values",))[0]["content"]
    assert values["deviceListStrategy"] == "envvar,cdi-annotations"
    assert {"name": "CDI_ANNOTATION_PREFIX", "value": "nvidia.cdi.k8s.io/"} in values["env"]
    with pytest.raises(GpuctkError, match="unknown manifest kind"):
        build(p, 1, only=("bogus",))


def test_unknown_runtime_has_no_values():
    with pytest.raises(GpuctkError, match="no device-plugin mode planned"):
        build(plan(facts_of("row10-unknown")))


def test_pod_spec_native_cdi_has_no_runtime_class():
    pod = build_pod(plan(facts_of("row1-containerd2")), gpus=2, image="img", name="sbx")
    assert "runtimeClassName" not in pod["spec"]
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert pod["spec"]["containers"][0]["image"] == "img" and pod["metadata"]["name"] == "sbx"


def test_pod_spec_legacy_uses_the_runtime_class():
    pod = build_pod(plan(facts_of("row5-containerd16")), gpus=1)
    assert pod["spec"]["runtimeClassName"] == "nvidia"


def test_management_pods_per_mode():
    pod = build_pod(plan(facts_of("row1-containerd2")), management=True)
    ctr = pod["spec"]["containers"][0]
    assert pod["spec"]["runtimeClassName"] == "nvidia" and "resources" not in ctr
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"} in ctr["env"]
    pod = build_pod(plan(facts_of("row8-nri")), management=True)
    assert pod["metadata"]["annotations"] == {
        "nvidia.cdi.k8s.io/container.main": "management.nvidia.com/gpu=all"
    }
    assert "runtimeClassName" not in pod["spec"]
    pod = build_pod(plan(facts_of("row7-crio-hook")), management=True)
    assert "runtimeClassName" not in pod["spec"] and pod["spec"]["containers"][0]["env"][0]["value"] == "all"


def test_pod_spec_mixed_cluster_pins_to_the_group():
    p = plan(facts_of("mixed-containerd-versions"))
    with pytest.raises(UsageError, match="--group"):
        build_pod(p, gpus=1)
    pod = build_pod(p, gpus=1, group=1)
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["new"]
    with pytest.raises(GpuctkError, match="injects nothing"):
        build_pod(p, gpus=1, group=2)


def test_pod_spec_argument_errors():
    p = plan(facts_of("row1-containerd2"))
    with pytest.raises(UsageError):
        build_pod(p)
    with pytest.raises(UsageError):
        build_pod(p, gpus=0)


def test_check_gpu():
    ok, lines = check_gpu(facts_of("row1-containerd2"), plan(facts_of("row1-containerd2")))
    assert ok and lines[0].startswith("ok: 2 node(s) with allocatable nvidia.com/gpu (16 GPUs)")
    assert any("need no RuntimeClass" in line for line in lines)
    f = facts_of("no-gpu")
    ok, lines = check_gpu(f, plan(f))
    assert not ok and "install the NVIDIA driver and device plugin" in lines[0]
    f = facts_of("row9-docker")
    for n in f["nodes"]:
        n["allocatable_gpu"] = 0
    ok, lines = check_gpu(f, plan(f))
    assert not ok and "labelled nvidia.com/gpu.present=true but none has allocatable" in lines[0]
    f = facts_of("row5-containerd16")
    f["runtime_classes"] = []
    ok, lines = check_gpu(f, plan(f))
    assert not ok and any("RuntimeClass 'nvidia', which does not exist" in line for line in lines)


def test_sandbox_runtime_class_only_where_injection_does_not_need_nvidia():
    pod = build_pod(plan(facts_of("row6-crio")), gpus=1, sandbox_runtime_class="gvisor")
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    pod = build_pod(plan(facts_of("row8-nri")), management=True, sandbox_runtime_class="kata")
    assert pod["spec"]["runtimeClassName"] == "kata" and pod["metadata"]["annotations"]
    with pytest.raises(GpuctkError, match="would bypass it"):
        build_pod(plan(facts_of("row5-containerd16")), gpus=1, sandbox_runtime_class="gvisor")
    with pytest.raises(GpuctkError, match="would bypass it"):
        build_pod(plan(facts_of("row1-containerd2")), management=True, sandbox_runtime_class="gvisor")
