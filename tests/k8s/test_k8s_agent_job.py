"""Agent Job spec: the cases of the reference aicr pkg/k8s/agent/job_test.go and more."""

from __future__ import annotations

import pytest

from gpuctk.errors import UsageError
from gpuctk.k8s.agent import (
    MUTUAL_EXCLUSION,
    AgentOptions,
    build_job,
    build_rbac,
    parse_configmap_uri,
    parse_node_selector,
    parse_toleration,
)


def pod_spec(**kw):
    return build_job(AgentOptions(**kw))["spec"]["template"]["spec"]


def env_of(spec):
    return {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}


def test_runtime_class_absent_when_empty():
    spec = pod_spec()
    assert "runtimeClassName" not in spec
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(spec)


def test_runtime_class_set_when_configured():
    spec = pod_spec(runtime_class="nvidia")
    assert spec["runtimeClassName"] == "nvidia"


def test_visible_devices_all_only_with_runtime_class():
    assert env_of(pod_spec(runtime_class="nvidia"))["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(pod_spec(require_gpu=True))
    # no GPU is consumed with a runtime class
    assert "nvidia.com/gpu" not in pod_spec(runtime_class="nvidia")["containers"][0]["resources"]["limits"]


def test_require_gpu_adds_limit_and_no_runtime_class():
    spec = pod_spec(require_gpu=True)
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "runtimeClassName" not in spec


def test_runtime_class_and_node_selector_coexist():
    spec = pod_spec(runtime_class="nvidia", node_selector={"nvidia.com/gpu.present": "true"})
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_both_is_the_mutual_exclusion_error():
    with pytest.raises(UsageError) as exc:
        AgentOptions(runtime_class="nvidia", require_gpu=True).validate()
    assert str(exc.value) == MUTUAL_EXCLUSION and "use --runtime-class" in MUTUAL_EXCLUSION


def test_job_shape_and_defaults():
    job = build_job(AgentOptions(namespace="ns1", job_name="snap", image="reg/gpuctk:1", timeout=120))
    assert job["metadata"] == {"name": "snap", "namespace": "ns1", "labels": job["metadata"]["labels"]}
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 0)
    assert spec["ttlSecondsAfterFinished"] == 3600 and spec["activeDeadlineSeconds"] == 180
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "gpuctk"
    assert pod["tolerations"] == [{"operator": "Exists"}]  # tolerate everything by default
    ctr = pod["containers"][0]
    assert ctr["image"] == "reg/gpuctk:1" and ctr["command"] == ["gpuctk"]
    assert ctr["args"][:4] == ["snapshot", "--output", "cm://ns1/gpuctk-snapshot", "--format"]
    assert "--host-root" in ctr["args"] and ctr["securityContext"]["privileged"] is True
    env = {e["name"]: e for e in ctr["env"]}
    assert env["GPUCTK_AGENT_MODE"]["value"] == "true"
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_restricted_mode_and_pull_secrets():
    spec = pod_spec(privileged=False, image_pull_secrets=["a", "b"])
    ctr = spec["containers"][0]
    assert "--host-root" not in ctr["args"] and ctr["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True and "hostPID" not in spec
    assert spec["imagePullSecrets"] == [{"name": "a"}, {"name": "b"}]


def test_custom_tolerations_replace_tolerate_all():
    tol = [parse_toleration("dedicated=gpu:NoSchedule"), parse_toleration("nvidia.com/gpu:NoSchedule")]
    assert pod_spec(tolerations=tol)["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert parse_toleration("*") == {"operator": "Exists"}
    with pytest.raises(UsageError, match="effect"):
        parse_toleration("a=b:Sometimes")


def test_rbac_objects():
    objs = build_rbac(AgentOptions(namespace="ns1"))
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    role = objs[1]
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "get", "update", "patch"],
    } in role["rules"]
    cr = objs[3]
    assert cr["metadata"]["name"] == "gpuctk-node-reader-ns1"
    assert objs[4]["roleRef"]["name"] == "gpuctk-node-reader-ns1"
    assert all(set(r["verbs"]) == {"get", "list"} for r in cr["rules"])  # read-only
    assert objs[4]["subjects"] == [{"kind": "ServiceAccount", "name": "gpuctk", "namespace": "ns1"}]


def test_option_validation_and_parsers():
    with pytest.raises(UsageError, match="namespace"):
        AgentOptions(namespace="Bad_NS").validate()
    with pytest.raises(UsageError, match="timeout"):
        AgentOptions(timeout=0).validate()
    assert parse_node_selector(["a=b,c=d", "e=f"]) == {"a": "b", "c": "d", "e": "f"}
    with pytest.raises(UsageError):
        parse_node_selector(["novalue"])
    assert parse_configmap_uri("cm://ns/name") == ("ns", "name")
    with pytest.raises(UsageError):
        parse_configmap_uri("cm://ns")
