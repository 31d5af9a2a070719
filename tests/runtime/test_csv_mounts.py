"""csv mode of the shim: ``modes.csv.mount-spec-path`` is a host path and
``NVIDIA_REQUIRE_JETPACK=csv-mounts=all`` selects every ``*.csv`` file there, as upstream
(NVIDIA/nvidia-container-toolkit ``internal/modifier/csv.go``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

import gpuctk.generate.jit as jit
from gpuctk.config import default_config
from gpuctk.runtime.host import Host
from gpuctk.runtime.log import Logger
from gpuctk.runtime.modify import modify_spec
from gpuctk.runtime.platform import StaticProbes
from support.tools import venv_script

REL_CSV_DIR = "etc/nvidia-container-runtime/host-files-for-container.d"
EXTRA_LIB = "/usr/lib/aarch64-linux-gnu/nvidia/libextra-jetpack.so.1"


class RecordingHost(Host):
    """The real Host with the generator call recorded (no generation)."""

    def __init__(self, cfg, probes):
        super().__init__(cfg, probes)
        self.generated: list[tuple[str, list[str], bool]] = []

    def jit_spec(self, mode, ids, csv_all=False):
        self.generated.append((mode, list(ids), csv_all))
        return {"cdiVersion": "0.5.0", "kind": f"runtime.nvidia.com/{mode}", "devices": []}

    def apply_cdi_spec(self, oci_spec, cdi_spec, source):
        return []

    def cuda_properties(self):
        return {}


def _cfg(mode: str = "csv", root: str = "") -> Any:
    """The default config (a ConfigDict; plain data here) with ``mode`` and the driver root."""
    cfg: Any = default_config()
    cfg["nvidia-container-runtime"]["mode"] = mode
    cfg["nvidia-container-cli"]["root"] = root
    return cfg


def _oci(env: list[str]) -> dict:
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "env": env}}


@pytest.mark.parametrize(
    ("jetpack", "expected"),
    [
        ("csv-mounts=all", True),
        ("", False),
        ("csv-mounts=base", False),
        ("csv-mounts=all,extra", False),  # upstream compares the whole value
    ],
)
@pytest.mark.parametrize(("mode", "probes"), [("csv", StaticProbes()), ("auto", StaticProbes(tegra=True))])
def test_require_jetpack_csv_mounts_all_reaches_the_generator(mode, probes, jetpack, expected):
    cfg = _cfg(mode)
    env = ["NVIDIA_VISIBLE_DEVICES=all"] + ([f"NVIDIA_REQUIRE_JETPACK={jetpack}"] if jetpack else [])
    host = RecordingHost(cfg, probes)
    assert modify_spec(_oci(env), cfg, host, Logger()) == "csv"
    assert host.generated == [("csv", ["all"], expected)]


def test_jit_cdi_mode_passes_csv_mounts_all_to_the_auto_generator():
    cfg = _cfg("jit-cdi")
    host = RecordingHost(cfg, StaticProbes(nvml=True))
    env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_JETPACK=csv-mounts=all"]
    modify_spec(_oci(env), cfg, host, Logger())
    assert host.generated == [("auto", ["0"], True)]


def test_host_jit_spec_hands_csv_all_and_the_driver_root_to_the_generator(monkeypatch):
    seen: dict[str, Any] = {}

    def fake_jit_spec(ids, cfg, **kwargs):
        seen.update(kwargs, ids=ids)
        return {"devices": []}

    monkeypatch.setattr(jit, "jit_spec", fake_jit_spec)
    cfg = _cfg(root="/run/nvidia/driver")
    Host(cfg, StaticProbes()).jit_spec("csv", ["all"], csv_all=True)
    assert seen == {
        "ids": ["all"],
        "driver_root": "/run/nvidia/driver",
        "dev_root": "/run/nvidia/driver",
        "mode": "csv",
        "csv_all": True,
    }
    Host(cfg, StaticProbes()).jit_spec("csv", ["all"])
    assert seen["csv_all"] is False


# ------------------------------------------------------------------ the real shim, end to end
@pytest.fixture
def jetson(tmp_path):
    """A simulated Orin whose CSV files are only in a host directory outside its driver root,
    plus ``extra.csv`` (not a base file) naming a library under the driver root."""
    from gpuctk.sim import create_node

    node = create_node("jetson-orin", str(tmp_path / "orin"))
    specs = tmp_path / "host-files-for-container.d"
    shutil.copytree(os.path.join(node.driver_root, REL_CSV_DIR), specs)
    shutil.rmtree(os.path.join(node.driver_root, REL_CSV_DIR))
    (specs / "extra.csv").write_text(f"lib, {EXTRA_LIB}\n")
    with open(os.path.join(node.driver_root, EXTRA_LIB.lstrip("/")), "wb") as f:
        f.write(b"\x7fELF")
    return node, specs


def _create(tmp_path, node, specs, env: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[nvidia-container-cli]\nroot = "{node.driver_root}"\n'
        f'[nvidia-container-runtime]\nruntimes = ["/bin/true"]\nmode = "csv"\n'
        f'[nvidia-container-runtime.modes.csv]\nmount-spec-path = "{specs}"\n'
    )
    bundle = tmp_path / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(_oci(["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all", *env])))
    r = subprocess.run(
        [venv_script("gpuctk-runtime"), "create", "--bundle", str(bundle), "cid"],
        env={
            **os.environ,
            "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg),
            "GPUCTK_JIT_CACHE_DIR": str(tmp_path / "jit"),
            "GPUCTK_INVENTORY": node.inventory_path,
            "GPUCTK_CONFIG_CACHE_DIR": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r, json.loads((bundle / "config.json").read_text())


def test_shim_csv_mode_reads_the_host_mount_spec_path_and_csv_mounts_all(tmp_path, jetson):
    node, specs = jetson
    r, spec = _create(tmp_path, node, specs, [])
    assert r.returncode == 0, r.stderr
    assert any(d["path"] == "/dev/nvhost-ctrl-gpu" for d in spec["linux"]["devices"])
    mounted = [m["destination"] for m in spec["mounts"]]
    assert "/usr/lib/aarch64-linux-gnu/nvidia/libcuda.so.1.1" in mounted and EXTRA_LIB not in mounted
    r, spec = _create(tmp_path, node, specs, ["NVIDIA_REQUIRE_JETPACK=csv-mounts=all"])
    assert r.returncode == 0, r.stderr
    assert EXTRA_LIB in [m["destination"] for m in spec["mounts"]]


def test_shim_csv_mode_without_csv_files_on_the_host_fails_naming_them(tmp_path, jetson):
    node, specs = jetson
    shutil.rmtree(specs)
    r, spec = _create(tmp_path, node, specs, [])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert str(specs / "devices.csv") in r.stderr
    assert "linux" not in spec
