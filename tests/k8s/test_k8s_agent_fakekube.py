"""`gpuctk snapshot --agent` against the in-process fake API server: the Job really runs
`gpuctk snapshot` as a local process, which writes the ConfigMap the CLI reads back."""

from __future__ import annotations

import json
import sys

import pytest

from gpuctk.cli.main import main
from gpuctk.k8s.agent import AgentOptions, build_job, build_namespace
from gpuctk.k8s.client import KubeAPIError, LightkubeAPI
from support.fakekube import FakeKube

RC = {
    "apiVersion": "node.k8s.io/v1",
    "kind": "RuntimeClass",
    "metadata": {"name": "nvidia"},
    "handler": "nvidia",
}


def run_cli(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def agent_args(kc, *extra):
    return [
        "snapshot",
        "--agent",
        "--kubeconfig",
        kc,
        "--image",
        "gpuctk:test",
        "--timeout",
        "60",
        "--format",
        "json",
        *extra,
    ]


def writes(fake: FakeKube):
    return [r for r in fake.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]


def test_runtime_class_agent_round_trip_through_configmap(kube, capsys, tmp_path):
    fake, kc = kube
    fake.add(RC)
    out_file = tmp_path / "snap.json"
    rc, _, err = run_cli(agent_args(kc, "--runtime-class", "nvidia", "-o", str(out_file)), capsys)
    assert rc == 0, err
    snap = json.loads(out_file.read_text())
    # collected inside the "pod": the fake kubelet ran gpuctk with the Job's env
    assert snap["kind"] == "GpuctkSnapshot" and snap["node"] == "gpu-node-1"
    assert snap["gpu"]["available"] is True and snap["gpu"]["count"] == 8
    assert snap["gpu"]["driver_version"] == "580.105.08"
    assert snap["kubernetes"]["node"]["runtime_version"] == "containerd://2.0.5"
    # the result travelled through the ConfigMap written by the agent process
    assert ("POST", "/api/v1/namespaces/gpuctk/configmaps") in fake.requests
    assert ("GET", "/api/v1/namespaces/gpuctk/configmaps/gpuctk-snapshot") in fake.requests
    assert "created Job gpuctk/gpuctk-snapshot" in err and "runtimeClassName nvidia" in err
    assert "completed" in err
    assert "using nvidia.com/gpu.present=true (1 GPU node(s))" in err  # aimed at a GPU node
    # cleaned up: Job, pods, ConfigMap, RBAC and the namespace we created
    for kind in ("Job", "Pod", "ConfigMap", "ServiceAccount", "Role", "RoleBinding"):
        assert fake.objects(kind, "gpuctk") == [], kind
    assert fake.objects("ClusterRole") == [] and fake.objects("ClusterRoleBinding") == []
    assert fake.objects("Namespace") == []


def test_missing_runtime_class_fails_before_creating_anything(kube, capsys):
    fake, kc = kube
    rc, _, err = run_cli(agent_args(kc, "--runtime-class", "nvidia"), capsys)
    assert rc == 1
    assert "RuntimeClass 'nvidia' not found in the cluster" in err and "nothing was created" in err
    assert "--node-selector nvidia.com/gpu.present=true" in err
    assert writes(fake) == []


def test_runtime_class_with_require_gpu_is_the_mutual_exclusion_error(kube, capsys):
    fake, kc = kube
    fake.add(RC)
    rc, _, err = run_cli(agent_args(kc, "--runtime-class", "nvidia", "--require-gpu"), capsys)
    assert rc == 2
    assert "mutually exclusive" in err and "use --runtime-class NAME" in err
    assert fake.requests == []  # not even a GET


def test_flags_read_env_vars(kube, capsys, monkeypatch):
    fake, kc = kube
    monkeypatch.setenv("GPUCTK_RUNTIME_CLASS", "nvidia")
    monkeypatch.setenv("GPUCTK_REQUIRE_GPU", "true")
    rc, _, err = run_cli(agent_args(kc), capsys)
    assert rc == 2 and "mutually exclusive" in err
    monkeypatch.delenv("GPUCTK_REQUIRE_GPU")
    monkeypatch.setenv("GPUCTK_NAMESPACE", "diag")
    monkeypatch.setenv("GPUCTK_NO_CLEANUP", "1")
    fake.add(RC)
    rc, out, err = run_cli(agent_args(kc), capsys)
    assert rc == 0, err
    assert json.loads(out)["gpu"]["count"] == 8
    job = fake.get_obj("Job", "gpuctk-snapshot", "diag")
    assert job["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_require_gpu_requests_a_gpu(kube, capsys):
    fake, kc = kube
    rc, out, err = run_cli(agent_args(kc, "--require-gpu", "--no-cleanup"), capsys)
    assert rc == 0, err
    assert json.loads(out)["gpu"]["count"] == 8
    spec = fake.get_obj("Job", "gpuctk-snapshot", "gpuctk")["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "runtimeClassName" not in spec


def test_no_cleanup_leaves_everything_and_plain_agent_sees_no_gpu(kube, capsys):
    fake, kc = kube
    rc, out, err = run_cli(
        agent_args(kc, "--no-cleanup", "--node-selector", "nvidia.com/gpu.present=true"), capsys
    )
    assert rc == 0, err
    snap = json.loads(out)
    # CDI cluster, neither flag: the pod gets no driver (like aicr's test plan)
    assert snap["gpu"]["available"] is False
    assert "--no-cleanup" in err
    assert fake.get_obj("Job", "gpuctk-snapshot", "gpuctk") is not None
    cm = fake.get_obj("ConfigMap", "gpuctk-snapshot", "gpuctk")
    assert cm["data"]["format"] == "json" and json.loads(cm["data"]["snapshot.json"])["node"] == "gpu-node-1"
    assert cm["metadata"]["labels"]["app.kubernetes.io/name"] == "gpuctk"
    assert {o["kind"] for o in fake.objects("ClusterRole")} == {"ClusterRole"}
    assert fake.get_obj("Job", "gpuctk-snapshot", "gpuctk")["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.present": "true"
    }
    # a second run replaces the old Job instead of reading its stale result
    rc, _, err = run_cli(agent_args(kc), capsys)
    assert rc == 0, err
    assert fake.objects("Job", "gpuctk") == []


def test_failed_agent_shows_pod_logs(tmp_path, fake_smi_dir, capsys):
    kc = str(tmp_path / "kc")

    def failing(argv):
        return [sys.executable, "-c", "import sys; print('agent exploded: no driver'); sys.exit(3)"]

    with FakeKube(command_map=failing, max_lifetime=60) as fake:
        fake.write_kubeconfig(kc)
        rc, _, err = run_cli(agent_args(kc), capsys)
    assert rc == 1
    assert "agent Job gpuctk/gpuctk-snapshot failed" in err and "agent exploded: no driver" in err
    assert fake.objects("Job", "gpuctk") == []  # cleaned up even on failure


def test_timeout_reports_state(tmp_path, capsys):
    kc = str(tmp_path / "kc")

    def slow(argv):
        return [sys.executable, "-c", "import time; time.sleep(4)"]

    with FakeKube(command_map=slow, max_lifetime=60, process_timeout=10) as fake:
        fake.write_kubeconfig(kc)
        rc, _, err = run_cli(["snapshot", "--agent", "--kubeconfig", kc, "--timeout", "1"], capsys)
    assert rc == 1 and "timed out after 1s waiting for Job gpuctk/gpuctk-snapshot" in err
    assert "Running" in err


def test_fake_admission_rejects_missing_runtime_class(kube):
    _fake, kc = kube
    api = LightkubeAPI(kc)
    api.create(build_namespace(AgentOptions()))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "gpuctk"},
        "spec": {"runtimeClassName": "nvidia", "containers": [{"name": "c", "image": "i"}]},
    }
    with pytest.raises(KubeAPIError) as exc:
        api.create(pod)
    assert exc.value.code == 403 and 'pod rejected: RuntimeClass "nvidia" not found' in str(exc.value)
    # a Job whose pod would be rejected: FailedCreate event, no pod
    api.create(build_job(AgentOptions(runtime_class="nvidia")))
    assert api.list("Pod", "gpuctk") == []
    events = api.list("Event", "gpuctk")
    assert events and events[0]["reason"] == "FailedCreate" and "not found" in events[0]["message"]
    with pytest.raises(KubeAPIError) as exc:
        api.create(build_namespace(AgentOptions()))
    assert exc.value.code == 409


def test_unreachable_api_server_is_one_line(tmp_path, capsys):
    kc = str(tmp_path / "kc")
    with FakeKube() as fake:
        fake.write_kubeconfig(kc)
    rc, _, err = run_cli(["snapshot", "--agent", "--kubeconfig", kc], capsys)
    assert rc == 1 and "cannot reach the Kubernetes API server" in err and "Traceback" not in err
