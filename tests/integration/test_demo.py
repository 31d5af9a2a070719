"""`make demo` (python -m gpuctk.sim.demo) runs end to end and shows the container's GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from support.tools import require_root, require_tool

pytestmark = pytest.mark.integration


def _demo(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpuctk.sim.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_demo_runs_container_seeing_simulated_gpus():
    require_root()
    require_tool("runc")
    p = _demo()
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    out = p.stdout
    assert "8x NVIDIA H100 80GB HBM3" in out and "cdiVersion 0.5.0" in out
    assert "devices (17): 0, 1, 2, 3, 4, 5, 6, 7, all + 8 by UUID" in out
    assert "hooks: create-symlinks, create-symlinks, enable-cuda-compat, update-ldcache" in out
    assert "container run" in out
    gpu_lines = [line for line in out.splitlines() if line.startswith("    | GPU ")]
    assert len(gpu_lines) == 8 and "NVIDIA H100 80GB HBM3 (UUID: GPU-" in gpu_lines[0]
    assert "195,   7" in out and "/dev/nvidiactl" in out


def test_demo_falls_back_to_cdi_inject_and_runc():
    require_root()
    require_tool("runc")
    p = _demo(GPUCTK_DEMO_NO_SHIM="1")
    assert p.returncode == 0, p.stderr
    assert "container run by plain runc" in p.stdout
    assert len([line for line in p.stdout.splitlines() if line.startswith("    | GPU ")]) == 8


def test_demo_without_root_prints_oci_diff(tmp_path):
    if os.geteuid() == 0:
        # run it as nobody: the node falls back to descriptor files and the demo to the OCI diff
        if not shutil.which("setpriv"):
            pytest.skip("setpriv not installed")
        try:
            import pwd

            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no nobody user")
        env = dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path))
        os.chmod(tmp_path, 0o777)
        p = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "gpuctk.sim.demo",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if p.returncode != 0 and "gpuctk demo" not in p.stdout:
            pytest.skip(f"cannot run the venv as nobody here: {p.stderr.strip()[-200:]}")
    else:
        p = _demo()
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "device nodes by descriptor" in p.stdout
    assert "OCI diff" in p.stdout and '"path": "/dev/nvidia0"' in p.stdout
