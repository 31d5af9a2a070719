"""`make demo` (python -m gpuctk.sim.demo) runs its container through gpuctk-runtime and shows its GPUs.

The demo has no fallback: a broken shim (e.g. `modify_spec` raising) makes it exit 1 with a FAILED
line, and these tests fail with it (docs/testing.md shows that run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from support.tools import require, require_root, require_tool

pytestmark = pytest.mark.integration


def _demo(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpuctk.sim.demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def demo_as_root() -> subprocess.CompletedProcess[str]:
    require_root()
    require_tool("runc")
    require_tool("busybox")
    return _demo()


def test_demo_runs_the_container_through_gpuctk_runtime(demo_as_root):
    p = demo_as_root
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr and "FAILED" not in p.stdout
    out = p.stdout
    assert "8x NVIDIA H100 80GB HBM3" in out and "cdiVersion 0.5.0" in out
    assert "devices (17): 0, 1, 2, 3, 4, 5, 6, 7, all + 8 by UUID" in out
    assert "hooks: create-symlinks, create-symlinks, enable-cuda-compat, update-ldcache" in out
    # which path ran, said by the demo and proven by the shim's own log line
    assert "[4] path: gpuctk-runtime (jit-cdi" in out
    assert re.search(r"gpuctk-runtime log: Updated OCI spec \S+/config\.json \(mode jit-cdi\)", out), out
    # what the container itself saw: the node's nvidia-smi and the injected device nodes
    gpu_lines = [line for line in out.splitlines() if line.startswith("    | GPU ")]
    assert len(gpu_lines) == 8 and "NVIDIA H100 80GB HBM3 (UUID: GPU-" in gpu_lines[0]
    nodes = re.findall(r"^    \| c\S+ .* 195, +(\d+) .* /dev/nvidia(\d+)$", out, re.M)
    assert sorted(int(n) for n, _ in nodes) == list(range(8)), out
    assert "/dev/nvidiactl" in out


def test_demo_shows_the_cycle_time_next_to_runc_alone(demo_as_root):
    out = demo_as_root.stdout
    assert "[5] cycle time (create + start + state + delete, /bin/true" in out, out
    assert re.search(r"through gpuctk-runtime \(\d+ hooks?\): \d+ ms", out), out
    assert re.search(r"runc alone, same edits pre-applied, no hooks: \d+ ms \(\d+\.\dx\)", out), out


def test_demo_without_root_prints_oci_diff_and_what_to_do(tmp_path):
    if os.geteuid() == 0:
        # run it as nobody: the node falls back to descriptor files and the demo to the OCI diff
        setpriv = require_tool("setpriv")
        try:
            import pwd

            pwd.getpwnam("nobody")
        except KeyError:
            require(False, "no nobody user")
        env = dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path))
        os.chmod(tmp_path, 0o777)
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
        p = subprocess.run(
            [*argv, "-m", "gpuctk.sim.demo"], capture_output=True, text=True, timeout=120, env=env
        )
        require("gpuctk demo" in p.stdout, f"cannot run the venv as nobody here: {p.stderr.strip()[-200:]}")
    else:
        p = _demo()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "device nodes by descriptor" in p.stdout
    assert "[4] not root: the container step needs root (runc, device nodes): no container run" in p.stdout
    assert "to run it, run `make demo` as root" in p.stdout
    assert "OCI diff" in p.stdout and '"path": "/dev/nvidia0"' in p.stdout
