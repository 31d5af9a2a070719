"""Podman consumes the CDI spec generated for a simulated dgx-h100 node.

podman 4.3 reads CDI specs only from /etc/cdi and /var/run/cdi, so the spec is made visible
there by `specs_visible_to_podman` for the duration of each test, with a vendor of its own
(`sim<pid>.nvidia.com`) so that it never collides with real specs. podman 4.3 also predates
CDI 0.7.0, hence
`no-additional-gids-for-device-nodes` (upstream issue #1940).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from gpuctk.generate import GenerateOptions, generate_spec
from gpuctk.generate.render import write_spec_file
from support.containers import podman_run, specs_visible_to_podman
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration


def _hook_works(hook: str) -> bool:
    p = subprocess.run([hook, "create-symlinks", "--help"], capture_output=True, text=True)
    return p.returncode == 0 and "not implemented" not in (p.stdout + p.stderr)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    require_root()
    require_tool("podman")
    from gpuctk.sim import create_node

    return create_node("dgx-h100", str(tmp_path_factory.mktemp("podman-node")))


@pytest.fixture
def spec_kind(node, request, tmp_path):
    vendor = f"sim{os.getpid()}.nvidia.com"
    hooks = getattr(request, "param", "disabled")
    opts = GenerateOptions(
        driver_root=node.root,
        inventory=node.inventory_path,
        vendor=vendor,
        feature_flags=["no-additional-gids-for-device-nodes"],
        # with hooks: only create-symlinks, the one this test checks
        disabled_hooks=["all"],
        enabled_hooks=[] if hooks == "disabled" else ["create-symlinks"],
        hook_path=venv_script("gpuctk-hook"),
    )
    spec, _ = generate_spec(opts)
    assert spec["cdiVersion"] == "0.5.0"
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    write_spec_file(spec, str(spec_dir / "sim.yaml"), "yaml")
    with specs_visible_to_podman([str(spec_dir)]):
        yield f"{vendor}/gpu"


SCRIPT = (
    "for n in /dev/nvidia*; do stat -c '%n %t:%T' $n; done; "
    "ls /usr/lib/x86_64-linux-gnu/; nvidia-smi -L; echo env=$NVIDIA_VISIBLE_DEVICES"
)


def test_podman_single_gpu(node, spec_kind):
    r = podman_run(["--device", f"{spec_kind}=0", "--", "sh", "-c", SCRIPT])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "/dev/nvidia0 c3:0" in lines  # major 195 = 0xc3
    assert "/dev/nvidiactl c3:ff" in lines and "/dev/nvidia-uvm 1fe:0" in lines
    assert not any(line.startswith("/dev/nvidia1 ") for line in lines)
    assert "libcuda.so.580.105.08" in lines and "libnvidia-ml.so.580.105.08" in lines
    for g in node.gpus:
        assert f"GPU {g['index']}: NVIDIA H100 80GB HBM3 (UUID: {g['uuid']})" in r.stdout
    assert "env=void" in lines


def test_podman_all_gpus(node, spec_kind):
    r = podman_run(["--device", f"{spec_kind}=all", "--", "sh", "-c", SCRIPT + "; ls /dev/dri"])
    assert r.returncode == 0, r.stderr
    for i in range(8):
        assert f"/dev/nvidia{i} c3:{i:x}" in r.stdout
    assert "card8" in r.stdout and "renderD135" in r.stdout


def test_podman_by_uuid(node, spec_kind):
    uuid = node.gpus[5]["uuid"]
    r = podman_run(["--device", f"{spec_kind}={uuid}", "--", "sh", "-c", "ls /dev"])
    assert r.returncode == 0, r.stderr
    assert "nvidia5" in r.stdout.split() and "nvidia0" not in r.stdout.split()


@pytest.mark.parametrize("spec_kind", ["enabled"], indirect=True)
def test_podman_with_gpuctk_hooks(node, spec_kind):
    assert _hook_works(venv_script("gpuctk-hook")), "gpuctk-hook create-symlinks --help failed"
    r = podman_run(
        [
            "--device",
            f"{spec_kind}=0",
            "--",
            "sh",
            "-c",
            "readlink /usr/lib/x86_64-linux-gnu/libcuda.so.1; readlink /dev/dri/by-path/pci-0000:53:00.0-card",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["libcuda.so.580.105.08", "../card1"]
