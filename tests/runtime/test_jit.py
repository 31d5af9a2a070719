"""jit-cdi through the real generator on a simulated 8-GPU node (no GPU needed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.tools import venv_script


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from gpuctk.sim import create_node

    return create_node("dgx-h100", str(tmp_path_factory.mktemp("sim")))


def run_shim(tmp_path, node, mode: str, request: str) -> tuple[subprocess.CompletedProcess, dict]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[nvidia-container-cli]\nroot = "{node.driver_root}"\n'
        f'[nvidia-container-runtime]\nmode = "{mode}"\nruntimes = ["/bin/true"]\n'
    )
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps(
            {
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "env": ["PATH=/bin", f"NVIDIA_VISIBLE_DEVICES={request}"]},
            }
        )
    )
    env = {
        **os.environ,
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg),
        "GPUCTK_JIT_CACHE_DIR": str(tmp_path / "jit-cache"),
        "GPUCTK_INVENTORY": node.inventory_path,
        "GPUCTK_CONFIG_CACHE_DIR": "",
    }
    r = subprocess.run(
        [venv_script("gpuctk-runtime"), "create", "--bundle", str(bundle), "cid"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r, json.loads((bundle / "config.json").read_text())


@pytest.mark.parametrize(
    ("mode", "request_value"),
    [("jit-cdi", "0,1"), ("auto", "runtime.nvidia.com/gpu=0,runtime.nvidia.com/gpu=1")],
)
def test_jit_injects_only_the_requested_gpus(tmp_path, node, mode, request_value):
    r, spec = run_shim(tmp_path, node, mode, request_value)
    assert r.returncode == 0, r.stderr
    paths = [d["path"] for d in spec["linux"]["devices"]]
    assert "/dev/nvidia0" in paths and "/dev/nvidia1" in paths and "/dev/nvidia2" not in paths
    assert "/dev/nvidiactl" in paths
    assert "NVIDIA_VISIBLE_DEVICES=void" in spec["process"]["env"]
    assert spec["mounts"], "driver files are mounted"


def test_jit_unknown_device_fails_cleanly(tmp_path, node):
    r, spec = run_shim(tmp_path, node, "jit-cdi", "42")
    assert r.returncode == 1
    assert "runtime.nvidia.com/gpu=42" in r.stderr and "Traceback" not in r.stderr
    assert "linux" not in spec


def test_csv_mode_on_a_simulated_jetson(tmp_path):
    """csv mode end to end on a simulated Jetson driver root. (``auto`` looks for the Tegra
    markers on the host's /, as upstream does, so a simulated root cannot make this host a
    Tegra host; auto -> csv is covered with static probes in test_auto_mode.py.)"""
    from gpuctk.sim import create_node

    jetson = create_node("jetson-orin", str(tmp_path / "jetson"))
    csv_dir = os.path.join(jetson.driver_root, "etc/nvidia-container-runtime/host-files-for-container.d")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[nvidia-container-cli]\nroot = "{jetson.driver_root}"\n'
        f'[nvidia-container-runtime]\nruntimes = ["/bin/true"]\nmode = "csv"\n'
        f'[nvidia-container-runtime.modes.csv]\nmount-spec-path = "{csv_dir}"\n'
    )
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps(
            {
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "env": ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"]},
            }
        )
    )
    log = tmp_path / "runc.log"
    env = {
        **os.environ,
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg),
        "GPUCTK_JIT_CACHE_DIR": str(tmp_path / "jit"),
        "GPUCTK_INVENTORY": jetson.inventory_path,
        "GPUCTK_CONFIG_CACHE_DIR": "",
    }
    r = subprocess.run(
        [venv_script("gpuctk-runtime"), "--log", str(log), "create", "--bundle", str(bundle), "cid"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "(mode csv)" in log.read_text()
    spec = json.loads((bundle / "config.json").read_text())
    assert any(d["path"].startswith("/dev/nvhost") for d in spec["linux"]["devices"])
