"""`gpuctk doctor`: one check per problem, each with its fix."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from snapfixtures import DRIVER, write_spec

from gpuctk.cli.main import main
from gpuctk.snapshot.doctor import exit_code, render, run_checks

HEALTHY: dict[str, Any] = {
    "kind": "GpuctkSnapshot",
    "gpu": {
        "available": True,
        "driver_version": DRIVER,
        "cuda_version": "13.0",
        "count": 1,
        "gpus": [{"index": 0, "persistence_mode": "Enabled"}],
    },
    "cdi": {
        "spec_dirs": ["/etc/cdi", "/var/run/cdi"],
        "specs": [
            {
                "path": "/etc/cdi/nvidia.yaml",
                "kind": "nvidia.com/gpu",
                "devices": ["0", "all"],
                "valid": True,
                "errors": [],
                "stale": False,
                "stale_reasons": [],
            }
        ],
    },
    "engines": [
        {
            "engine": "containerd",
            "version": "2.0.5",
            "cdi_supported": True,
            "cdi_enabled": True,
            "gpu_runtime_configured": True,
            "gpu_runtimes": ["nvidia"],
            "recommendation": {"command": "gpuctk runtime configure --runtime containerd"},
        }
    ],
    "dev_char": {"checked": 3, "missing": []},
}


def checks_of(snap):
    return {c.name: c for c in run_checks(snap)}


def test_healthy_node_passes():
    checks = run_checks(HEALTHY)
    assert {c.status for c in checks} == {"pass"} and exit_code(checks) == 0
    assert "[PASS] driver: driver 580.105.08" in render(checks)


def test_driver_missing():
    snap = copy.deepcopy(HEALTHY)
    snap["gpu"] = {"available": False, "count": 0, "error": "nvidia-smi not found on PATH"}
    c = checks_of(snap)["driver"]
    assert c.status == "fail" and "nvidia-smi not found" in c.message and "install the NVIDIA driver" in c.fix
    assert exit_code(run_checks(snap)) == 1


def test_persistence_mode_off():
    snap = copy.deepcopy(HEALTHY)
    snap["gpu"]["gpus"][0]["persistence_mode"] = "Disabled"
    c = checks_of(snap)["persistence-mode"]
    assert c.status == "warn" and "nvidia-smi -pm 1" in c.fix


def test_stale_and_invalid_specs():
    snap = copy.deepcopy(HEALTHY)
    snap["cdi"]["specs"][0].update(
        stale=True, stale_reasons=["spec names driver 550.54.15 but the loaded driver is X"]
    )
    c = checks_of(snap)["cdi-spec"]
    assert (
        c.status == "fail"
        and "stale" in c.message
        and "gpuctk cdi generate --output /etc/cdi/nvidia.yaml" in c.fix
    )
    snap["cdi"]["specs"][0].update(stale=False, valid=False, errors=["cdiVersion: unsupported"])
    assert checks_of(snap)["cdi-spec"].message.endswith("is invalid: cdiVersion: unsupported")
    snap["cdi"]["specs"] = []
    c = checks_of(snap)["cdi-specs"]
    assert c.status == "warn" and c.fix.startswith("gpuctk cdi generate")


def test_cdi_disabled_in_engine():
    snap = copy.deepcopy(HEALTHY)
    snap["engines"][0].update(
        version="1.7.12",
        cdi_enabled=False,
        recommendation={"command": "gpuctk runtime configure --runtime containerd --enable-cdi"},
    )
    c = checks_of(snap)["cdi-containerd"]
    assert c.status == "fail" and "disabled" in c.message and c.fix.endswith("--enable-cdi")


def test_gpu_runtime_not_configured():
    snap = copy.deepcopy(HEALTHY)
    snap["engines"][0].update(
        version="1.6.20",
        cdi_supported=False,
        cdi_enabled=False,
        gpu_runtime_configured=False,
        gpu_runtimes=[],
        recommendation={},
    )
    c = checks_of(snap)["gpu-runtime-containerd"]
    assert c.status == "fail" and "no GPU runtime configured" in c.message and "--set-as-default" in c.fix
    snap = copy.deepcopy(HEALTHY)
    snap["engines"][0].update(gpu_runtime_configured=False, gpu_runtimes=[])
    assert checks_of(snap)["gpu-runtime-containerd"].status == "warn"


def test_dev_char_links_missing():
    snap = copy.deepcopy(HEALTHY)
    snap["dev_char"] = {"checked": 2, "missing": [{"device": "/dev/nvidiactl", "link": "/dev/char/195:255"}]}
    c = checks_of(snap)["dev-char-links"]
    assert c.status == "warn" and "/dev/char/195:255 -> /dev/nvidiactl" in c.message
    assert "create-dev-char-symlinks" in c.fix


def test_doctor_cli_on_a_node_fixture(host, smi, capsys):
    root, libs = host
    write_spec(root, "nvidia.json", [p.replace(DRIVER, "550.54.15") for p in libs])
    rc = main(["doctor", "--host-root", root, "--nvidia-smi", smi, "--runtime", "containerd"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "[PASS] driver: driver 580.105.08" in out
    assert "[FAIL] cdi-spec: /etc/cdi/nvidia.json is stale" in out and "fix: regenerate it" in out


def test_doctor_cli_from_saved_snapshot(tmp_path, capsys):
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump(HEALTHY))
    assert main(["doctor", "--from", str(path), "--output", "json"]) == 0
    assert {c["status"] for c in json.loads(capsys.readouterr().out)} == {"pass"}
    path.write_text("kind: Other\n")
    assert main(["doctor", "--from", str(path)]) == 1
    assert "not a gpuctk snapshot" in capsys.readouterr().err
    path.write_text("kind: GpuctkSnapshot\ngpu: 5\n")  # right kind, fields of the wrong type
    assert main(["doctor", "--from", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"gpuctk: error: {path}: gpu: expected a mapping\n"


def test_bad_env_choice_is_a_usage_error(monkeypatch, capsys):
    # argparse does not check choices for defaults taken from GPUCTK_* variables
    monkeypatch.setenv("GPUCTK_RUNTIME", "bogus")
    assert main(["doctor"]) == 2
    assert "GPUCTK_RUNTIME): invalid choice 'bogus'" in capsys.readouterr().err
    monkeypatch.delenv("GPUCTK_RUNTIME")
    monkeypatch.setenv("GPUCTK_FORMAT", "xml")
    assert main(["snapshot"]) == 2
    assert "GPUCTK_FORMAT): invalid choice 'xml'" in capsys.readouterr().err


def test_missing_host_root_is_a_usage_error(tmp_path, capsys):
    assert main(["doctor", "--host-root", str(tmp_path / "nope")]) == 2
    assert "--host-root" in capsys.readouterr().err
    assert main(["snapshot", "--host-root", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
