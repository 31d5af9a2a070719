"""`gpuctk k8s plan|manifests|pod-spec|check-gpu` from files, flags and the fake API server."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from gpuctk.cli.main import main

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "k8s", "clusters")


def fx(name):
    return os.path.join(DATA, f"{name}.yaml")


def test_plan_table_and_machine_output(capsys):
    assert main(["k8s", "plan", "--from", fx("mixed-containerd-crio")]) == 0
    out = capsys.readouterr().out
    assert "[group 1] containerd 2.0.5" in out and "WARNING: mixed container runtimes" in out
    assert main(["k8s", "plan", "--from", fx("row8-nri"), "-o", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["groups"][0]["row"] == 8
    assert main(["k8s", "plan", "--from", fx("row5-containerd16"), "-o", "yaml"]) == 0
    assert (
        yaml.safe_load(capsys.readouterr().out)["groups"][0]["gpu_workload"]["runtimeClassName"] == "nvidia"
    )


def test_plan_for_a_hypothetical_runtime(capsys):
    assert (
        main(["k8s", "plan", "--runtime-version", "containerd://1.7.12-0ubuntu2~22.04.1", "-o", "json"]) == 0
    )
    g = json.loads(capsys.readouterr().out)["groups"][0]
    assert g["row"] == 3 and g["management"]["method"] == "runtime-class"
    assert (
        main(["k8s", "plan", "--runtime-version", "containerd://1.7.12", "--cdi-enabled", "-o", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["groups"][0]["row"] == 2


def test_plan_input_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n")
    assert main(["k8s", "plan", "--from", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gpuctk: error: {bad}: not valid YAML") and err.count("\n") == 1
    assert main(["k8s", "plan", "--from", str(tmp_path / "missing.yaml")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert main(["k8s", "plan", "--from", fx("row6-crio"), "--runtime-version", "cri-o://1.29.1"]) == 2


@pytest.mark.parametrize("content", ["apiVersion: v1\nclusters: 5\n", "hello\n", "[1, 2]\n", ": : :\n"])
def test_garbage_kubeconfig_is_one_line(tmp_path, capsys, content):
    kc = tmp_path / "kc"
    kc.write_text(content)
    assert main(["k8s", "plan", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"gpuctk: error: no usable Kubernetes configuration ({kc})") and err.count("\n") == 1
    )


def test_manifests_out_dir_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["k8s", "manifests", "--from", fx("row1-containerd2"), "--out-dir", str(blocker / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gpuctk: error: {blocker / 'x'}: cannot create directory") and err.count("\n") == 1


def test_manifests_stdout_and_out_dir(tmp_path, capsys):
    assert main(["k8s", "manifests", "--from", fx("row1-containerd2"), "--device-id-strategy", "index"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert [d.get("kind") for d in docs[:3]] == ["RuntimeClass"] * 3
    assert docs[3]["deviceListStrategy"] == "cdi-cri" and docs[3]["deviceIDStrategy"] == "index"
    out = tmp_path / "out"
    assert main(["k8s", "manifests", "--from", fx("row6-crio"), "--out-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["device-plugin-values.yaml", "runtimeclasses.yaml", "toolkit-env.yaml"]
    assert capsys.readouterr().out.count(str(out)) == 3
    env = yaml.safe_load((out / "toolkit-env.yaml").read_text())["toolkit"]["env"]
    assert {"name": "CRIO_CONFIG_MODE", "value": "config"} in env
    assert (
        main(["k8s", "manifests", "--from", fx("row9-docker"), "--only", "runtimeclasses", "-o", "json"]) == 0
    )
    assert list(json.loads(capsys.readouterr().out)) == ["runtimeclass-nvidia"]


def test_pod_spec_cli(capsys):
    assert (
        main(
            [
                "k8s",
                "pod-spec",
                "--from",
                fx("row1-containerd2"),
                "--gpus",
                "2",
                "--image",
                "img",
                "--name",
                "s",
            ]
        )
        == 0
    )
    pod = yaml.safe_load(capsys.readouterr().out)
    assert pod["metadata"]["name"] == "s" and "runtimeClassName" not in pod["spec"]
    assert main(["k8s", "pod-spec", "--from", fx("row5-containerd16"), "--management", "-o", "json"]) == 0
    pod = json.loads(capsys.readouterr().out)
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    with pytest.raises(SystemExit) as exc:  # needs --gpus or --management
        main(["k8s", "pod-spec", "--from", fx("row1-containerd2")])
    assert exc.value.code == 2


def test_check_gpu_cli(capsys):
    assert main(["k8s", "check-gpu", "--from", fx("row6-crio")]) == 0
    assert "need no RuntimeClass" in capsys.readouterr().out
    assert main(["k8s", "check-gpu", "--from", fx("no-gpu")]) == 1
    assert "no node has allocatable nvidia.com/gpu" in capsys.readouterr().err


def test_live_cluster_through_the_fake_api_server(kube, capsys):
    fake, kc = kube
    fake.add(
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": "nvidia"},
            "handler": "nvidia",
        }
    )
    with open(fx("row1-containerd2")) as f:
        ds = yaml.safe_load(f)["daemonSets"][0]
    fake.add(ds)
    assert main(["k8s", "plan", "--kubeconfig", kc, "-o", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["gpu_nodes"] == 1 and p["other_nodes"] == 1 and p["gpu_operator"] is None
    g = p["groups"][0]
    assert (g["row"], g["nodes"], g["allocatable_gpus"]) == (1, ["gpu-node-1"], 8)
    assert p["device_plugin"]["strategies"] == ["cdi-cri"]
    assert main(["k8s", "check-gpu", "--kubeconfig", kc]) == 0
    assert "gpu-node-1" in capsys.readouterr().out


def test_local_snapshot_with_cluster_data_feeds_the_planner(
    kube, tmp_path, capsys, monkeypatch, fake_smi_dir
):
    _fake, kc = kube
    monkeypatch.setenv("NODE_NAME", "gpu-node-1")
    snap_file = tmp_path / "snap.yaml"
    rc = main(
        [
            "snapshot",
            "--kubeconfig",
            kc,
            "--nvidia-smi",
            os.path.join(fake_smi_dir, "nvidia-smi"),
            "--host-root",
            str(tmp_path),
            "-o",
            str(snap_file),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    snap = yaml.safe_load(snap_file.read_text())
    assert snap["kubernetes"]["node"]["name"] == "gpu-node-1"
    assert snap["kubernetes"]["node"]["allocatable_gpu"] == 8
    assert snap["gpu"]["count"] == 8
    assert main(["k8s", "plan", "--from", str(snap_file), "-o", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["groups"][0]["nodes"] == ["gpu-node-1"] and p["groups"][0]["row"] == 1
    # a snapshot taken outside a cluster says why it cannot be planned
    assert main(["snapshot", "--no-kubernetes", "--host-root", str(tmp_path), "-o", str(snap_file)]) == 0
    assert main(["k8s", "plan", "--from", str(snap_file)]) == 1
    assert "this snapshot has no cluster data" in capsys.readouterr().err
