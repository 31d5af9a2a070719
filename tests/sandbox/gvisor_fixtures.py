"""Fixture OCI specs for the gVisor contract checks: three flows and a pass/fail(/warn) case per rule.

The JSON files under tests/data/sandbox/ are generated from this table so each case is a readable,
minimal mutation of a good base spec. Regenerate with:

    GPUCTK_UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/sandbox/test_gvisor_rules.py

File names: ``rules/<RULE>-<expected status>[-<what>].json``; optional sidecars
``<name>.runsc.toml`` (runsc.toml given to the check) and ``<name>.driver`` (--driver-version).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "sandbox")
DRIVER = "580.105.08"  # on nvproxy's supported list; the H100 capture's driver
HOOK = "/usr/bin/nvidia-cdi-hook"
LIB = "/usr/lib/x86_64-linux-gnu"


def _hook(name: str, *args: str, path: str = HOOK) -> dict:
    argv = (
        ["nvidia-ctk", "hook", name, *args]
        if os.path.basename(path) == "nvidia-ctk"
        else [os.path.basename(path), name, *args]
    )
    return {"path": path, "args": argv, "env": ["NVIDIA_CTK_DEBUG=false"]}


def _bind(src: str, dst: str | None = None) -> dict:
    return {
        "destination": dst or src,
        "type": "bind",
        "source": src,
        "options": ["ro", "nosuid", "nodev", "rbind", "rprivate"],
    }


def _dev(path: str, major: int, minor: int) -> dict:
    return {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 438, "uid": 0, "gid": 0}


def _base(env: list[str]) -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["nvidia-smi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *env],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]},
        },
        "root": {"path": "rootfs"},
        "hostname": "gpu",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
    }


def cdi_flow() -> dict:
    """What a CDI engine produces from a runsc-ready spec: devices, libraries, hooks, single void."""
    s = _base(["NVIDIA_VISIBLE_DEVICES=void"])
    s["linux"]["devices"] = [
        _dev("/dev/nvidia-uvm", 510, 0),
        _dev("/dev/nvidiactl", 195, 255),
        _dev("/dev/nvidia0", 195, 0),
    ]
    s["mounts"] += [
        _bind(f"{LIB}/libcuda.so.{DRIVER}"),
        _bind(f"{LIB}/libnvidia-ml.so.{DRIVER}"),
        _bind("/usr/bin/nvidia-smi"),
    ]
    s["hooks"] = {
        "createContainer": [
            _hook("create-symlinks", "--link", f"libcuda.so.1::{LIB}/libcuda.so"),
            _hook("enable-cuda-compat", f"--host-driver-version={DRIVER}"),
            _hook("update-ldcache", "--folder", LIB),
        ]
    }
    return s


def legacy_flow() -> dict:
    """Legacy mode: the nvidia-container-runtime-hook prestart hook, GPUs named in the env."""
    s = _base(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"])
    s["hooks"] = {
        "prestart": [
            {
                "path": "/usr/bin/nvidia-container-runtime-hook",
                "args": ["nvidia-container-runtime-hook", "prestart"],
            }
        ]
    }
    return s


def csv_flow() -> dict:
    """CSV mode (Tegra/Thor-class with OpenRM nodes): CDI-style edits plus the Tegra release file."""
    lib = "/usr/lib/aarch64-linux-gnu/nvidia"
    s = _base(["NVIDIA_VISIBLE_DEVICES=void"])
    s["linux"]["devices"] = [
        _dev("/dev/nvidiactl", 195, 255),
        _dev("/dev/nvidia0", 195, 0),
        _dev("/dev/nvidia-uvm", 506, 0),
    ]
    s["mounts"] += [
        _bind("/etc/nv_tegra_release"),
        _bind(f"{lib}/libcuda.so.1.1"),
        _bind(f"{lib}/libnvidia-ml.so.1"),
    ]
    s["hooks"] = {
        "createContainer": [
            _hook("create-symlinks", "--link", f"libcuda.so.1::{lib}/libcuda.so"),
            _hook(
                "enable-cuda-compat",
                "--host-cuda-version=12.6",
                "--cuda-compat-container-root=/usr/local/cuda/compat_orin",
            ),
            _hook("update-ldcache", "--folder", lib),
        ]
    }
    return s


FLOWS: dict[str, Callable[[], dict]] = {"cdi": cdi_flow, "legacy": legacy_flow, "csv": csv_flow}


def _env(s: dict, *entries: str, drop: str | None = None) -> dict:
    env = s["process"]["env"]
    if drop:
        env[:] = [e for e in env if not e.startswith(drop + "=")]
    env.extend(entries)
    return s


def _no_dev(s: dict, *paths: str) -> dict:
    s["linux"]["devices"] = [d for d in s["linux"]["devices"] if d["path"] not in paths]
    return s


def _add_dev(s: dict, *devs: dict) -> dict:
    s["linux"]["devices"].extend(devs)
    return s


def _annot(s: dict, **kv: str) -> dict:
    s.setdefault("annotations", {}).update(kv)
    return s


def _cc(s: dict, *hooks: dict) -> dict:
    s["hooks"].setdefault("createContainer", []).extend(hooks)
    return s


def _set(s: dict, fn: Callable[[dict], None]) -> dict:
    fn(s)
    return s


def _no_gpu_edits(s: dict) -> dict:
    s["linux"].pop("devices")
    s.pop("hooks")
    s["mounts"] = s["mounts"][:1]
    return _env(s, "NVIDIA_VISIBLE_DEVICES=all", drop="NVIDIA_VISIBLE_DEVICES")


K8S = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "0123abcd"}
NVHOST = [_dev("/dev/nvhost-gpu", 496, 3), _dev("/dev/nvmap", 10, 125)]

# name -> (base flow, mutation, runsc.toml text or None, driver version or None)
Case = tuple[str, Callable[[dict], dict], str | None, str | None]
CASES: dict[str, Case] = {
    "C1-pass": ("cdi", lambda s: s, None, DRIVER),
    "C1-fail-no-gpu-signal": ("cdi", _no_gpu_edits, None, DRIVER),
    "C2-pass-driver-version-flag": (
        "cdi",
        lambda s: s,
        '[runsc_config]\nnvproxy-driver-version = "580.105.08"\n',
        DRIVER,
    ),
    "C2-fail-rootless": ("cdi", lambda s: s, '[runsc_config]\nrootless = "true"\n', DRIVER),
    "C2-warn-host-side": ("cdi", lambda s: s, None, DRIVER),
    "C3-pass": ("cdi", lambda s: s, None, DRIVER),
    "C3-fail-unlisted-driver": ("cdi", lambda s: s, None, "570.211.01"),
    "C3-fail-unsupported-driver": ("cdi", lambda s: s, None, "550.90.07"),
    "C3-warn-unsupported-allowed": (
        "cdi",
        lambda s: s,
        '[runsc_config]\nnvproxy-allow-unsupported-driver = "true"\n',
        "550.90.07",
    ),
    "C4-pass": ("cdi", lambda s: s, None, DRIVER),
    "C4-fail-mig": (
        "cdi",
        lambda s: _add_dev(s, _dev("/dev/nvidia-caps/nvidia-cap21", 508, 21)),
        None,
        DRIVER,
    ),
    "C4-warn-unbacked-nodes": (
        "cdi",
        lambda s: _add_dev(s, _dev("/dev/nvidia-modeset", 195, 254), _dev("/dev/dri/card1", 226, 1)),
        None,
        DRIVER,
    ),
    "C5-pass": ("cdi", lambda s: s, None, DRIVER),
    "C5-fail-persistenced-socket": (
        "cdi",
        lambda s: _set(
            s,
            lambda x: x["mounts"].append(
                {
                    "destination": "/run/nvidia-persistenced/socket",
                    "type": "bind",
                    "source": "/run/nvidia-persistenced/socket",
                    "options": ["nosuid", "nodev", "rbind", "rprivate", "noexec"],
                }
            ),
        ),
        None,
        DRIVER,
    ),
    "C6-pass": ("cdi", lambda s: s, None, DRIVER),
    "C6-fail-malformed-env": ("legacy", lambda s: _env(s, "DEBUG"), None, DRIVER),
    "C7-pass": ("legacy", lambda s: s, None, DRIVER),
    "C7-fail-graphics-on-hook-path": (
        "legacy",
        lambda s: _env(s, "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics"),
        None,
        DRIVER,
    ),
    "C7-warn-graphics-on-cdi-path": (
        "cdi",
        lambda s: _env(s, "NVIDIA_DRIVER_CAPABILITIES=compute,video"),
        None,
        DRIVER,
    ),
    "C8-pass": ("cdi", lambda s: s, None, DRIVER),
    "C8-fail-erofs-rootfs": (
        "cdi",
        lambda s: _annot(
            s,
            **{"dev.gvisor.spec.rootfs.type": "erofs", "dev.gvisor.spec.rootfs.source": "/images/base.erofs"},
        ),
        None,
        DRIVER,
    ),
    "L1-pass": ("legacy", lambda s: s, None, DRIVER),
    "L1-fail-toolkit-alias": (
        "legacy",
        lambda s: _set(
            s,
            lambda x: x["hooks"]["prestart"][0].update(
                path="/usr/bin/nvidia-container-toolkit", args=["nvidia-container-toolkit", "prestart"]
            ),
        ),
        None,
        DRIVER,
    ),
    "L2-pass": ("legacy", lambda s: s, None, DRIVER),
    "L2-fail-implicit-legacy-image": (
        "legacy",
        lambda s: _env(s, "CUDA_VERSION=11.0.3", drop="NVIDIA_VISIBLE_DEVICES"),
        None,
        DRIVER,
    ),
    "L3-pass": ("legacy", lambda s: s, None, DRIVER),
    "L3-fail-mig-uuid": (
        "legacy",
        lambda s: _env(
            s,
            "NVIDIA_VISIBLE_DEVICES=MIG-3287d2a4-120a-5704-a500-d5d046193324",
            drop="NVIDIA_VISIBLE_DEVICES",
        ),
        None,
        DRIVER,
    ),
    "L4-pass": ("legacy", lambda s: s, None, DRIVER),
    "L4-fail-no-root": ("legacy", lambda s: _set(s, lambda x: x.pop("root")), None, DRIVER),
    "L5-warn-host-side": ("legacy", lambda s: s, None, DRIVER),
    "L6-pass": ("legacy", lambda s: s, None, DRIVER),
    "L6-warn-require-ignored": (
        "legacy",
        lambda s: _env(s, "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=535"),
        None,
        DRIVER,
    ),
    "L7-pass": ("legacy", lambda s: s, None, DRIVER),
    "L8-pass-binary-name": (
        "legacy",
        lambda s: s,
        'binary_name = "/usr/local/bin/gpuctk-runtime"\n[runsc_config]\nnvproxy = "true"\n',
        DRIVER,
    ),
    "L8-warn-no-binary-name": ("legacy", lambda s: s, '[runsc_config]\nnvproxy = "true"\n', DRIVER),
    "D1-pass": ("cdi", lambda s: s, None, DRIVER),
    "D1-fail-no-nvidiactl": ("cdi", lambda s: _no_dev(s, "/dev/nvidiactl"), None, DRIVER),
    "D2-pass": ("cdi", lambda s: s, None, DRIVER),
    "D2-fail-isolation-leak": (
        "cdi",
        lambda s: _env(
            s, "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=void", drop="NVIDIA_VISIBLE_DEVICES"
        ),
        None,
        DRIVER,
    ),
    "D3-pass": ("cdi", lambda s: s, None, DRIVER),
    "D3-fail-relative-hook": (
        "cdi",
        lambda s: _cc(s, {"path": "my-hook", "args": ["my-hook"]}),
        None,
        DRIVER,
    ),
    "D3-warn-unverified-hook": (
        "cdi",
        lambda s: _cc(s, {"path": "/usr/local/bin/netns-setup", "args": ["netns-setup", "--pid-from-state"]}),
        None,
        DRIVER,
    ),
    "D4-pass": ("cdi", lambda s: _cc(s, _hook("disable-device-node-modification")), None, DRIVER),
    "D4-fail-nvidia-ctk": (
        "cdi",
        lambda s: _cc(s, _hook("disable-device-node-modification", path="/usr/bin/nvidia-ctk")),
        None,
        DRIVER,
    ),
    "D5-pass": ("cdi", lambda s: s, None, DRIVER),
    "D5-warn-no-driver-libraries": (
        "cdi",
        lambda s: _set(s, lambda x: x.update(mounts=x["mounts"][:1])),
        None,
        DRIVER,
    ),
    "D6-pass": ("cdi", lambda s: s, None, DRIVER),
    "D6-warn-capabilities-do-not-restrict": (
        "cdi",
        lambda s: _env(s, "NVIDIA_DRIVER_CAPABILITIES=utility"),
        None,
        DRIVER,
    ),
    "D7-pass": ("cdi", lambda s: _annot(s, **K8S), '[runsc_config]\nnvproxy = "true"\n', DRIVER),
    "D7-warn-pod-runsc-config-unknown": ("cdi", lambda s: _annot(s, **K8S), None, DRIVER),
    "D7-fail-pod-without-nvproxy": (
        "cdi",
        lambda s: _annot(s, **K8S),
        'binary_name = "/usr/local/bin/gpuctk-runtime"\n',
        DRIVER,
    ),
    "S1-pass": ("csv", lambda s: s, None, "615.62.00"),
    "S1-fail-tegra-legacy-hook": (
        "legacy",
        lambda s: _set(s, lambda x: x["mounts"].append(_bind("/etc/nv_tegra_release"))),
        None,
        DRIVER,
    ),
    "S2-pass": ("csv", lambda s: s, None, "615.62.00"),
    "S2-fail-no-nvidiactl": ("csv", lambda s: _no_dev(s, "/dev/nvidiactl"), None, "615.62.00"),
    "S3-pass": ("csv", lambda s: s, None, "615.62.00"),
    "S3-warn-nvgpu-nodes": ("csv", lambda s: _add_dev(s, *NVHOST), None, "615.62.00"),
    "S3-fail-nvgpu-only": ("csv", lambda s: _add_dev(_no_dev(s, "/dev/nvidia0"), *NVHOST), None, "615.62.00"),
    "S4-pass": ("csv", lambda s: s, None, "615.62.00"),
    "S4-fail-cli-on-csv-host": (
        "csv",
        lambda s: _env(
            s, "NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=void", drop="NVIDIA_VISIBLE_DEVICES"
        ),
        None,
        "615.62.00",
    ),
    "S5-warn-experimental": ("csv", lambda s: s, None, "615.62.00"),
}


def build(name: str) -> tuple[dict, str | None, str | None]:
    flow, mutate, toml, driver = CASES[name]
    return mutate(copy.deepcopy(FLOWS[flow]())), toml, driver
