#!/usr/bin/env python3
"""CDI library benchmark: registry load of 50 eight-GPU-sized specs, resolve, inject 8
devices, and the whole-process time of `gpuctk cdi inject` (target < 40 ms).

Standalone: `.venv/bin/python benchmarks/bench_cdi.py [--quick]`. Prints a table; no asserts.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from gpuctk.cdi import Registry, write_spec  # noqa: E402

LIBS = [
    f"/usr/lib/x86_64-linux-gnu/lib{n}.so.550.54.15"
    for n in (
        "cuda",
        "nvidia-ml",
        "nvidia-ptxjitcompiler",
        "nvidia-opencl",
        "nvidia-nvvm",
        "nvidia-cfg",
        "nvidia-gpucomp",
        "nvidia-allocator",
        "nvidia-pkcs11",
        "nvidia-pkcs11-openssl3",
        "nvidia-encode",
        "nvcuvid",
        "nvidia-opticalflow",
        "nvidia-eglcore",
        "nvidia-glcore",
        "nvidia-tls",
        "nvidia-glsi",
        "nvidia-fbc",
        "nvidia-rtcore",
        "nvoptix",
        "GLX_nvidia",
        "EGL_nvidia",
        "GLESv2_nvidia",
        "GLESv1_CM_nvidia",
        "nvidia-glvkspirv",
        "nvidia-ngx",
    )
]
BINS = [
    f"/usr/bin/{b}"
    for b in (
        "nvidia-smi",
        "nvidia-debugdump",
        "nvidia-persistenced",
        "nvidia-cuda-mps-control",
        "nvidia-cuda-mps-server",
    )
]
HOOK = "/usr/bin/nvidia-cdi-hook"


def gpu_spec(vendor: str, gpus: int = 8) -> dict:
    """A spec shaped like `nvidia-ctk cdi generate` output for an 8-GPU node."""

    def gpu_edits(i: int) -> dict:
        return {
            "deviceNodes": [
                {"path": f"/dev/nvidia{i}", "type": "c", "major": 195, "minor": i},
                {"path": f"/dev/dri/card{i + 1}", "type": "c", "major": 226, "minor": i + 1},
                {"path": f"/dev/dri/renderD{128 + i}", "type": "c", "major": 226, "minor": 128 + i},
            ],
            "hooks": [
                {
                    "hookName": "createContainer",
                    "path": HOOK,
                    "args": [
                        "nvidia-cdi-hook",
                        "create-symlinks",
                        "--link",
                        f"../card{i + 1}::/dev/dri/by-path/pci-0000:{i:02x}:00.0-card",
                        "--link",
                        f"../renderD{128 + i}::/dev/dri/by-path/pci-0000:{i:02x}:00.0-render",
                    ],
                }
            ],
        }

    devices = [{"name": str(i), "containerEdits": gpu_edits(i)} for i in range(gpus)]
    devices += [
        {"name": f"GPU-{i:08x}-1111-2222-3333-444455556666", "containerEdits": gpu_edits(i)}
        for i in range(gpus)
    ]
    all_edits: dict = {"deviceNodes": [], "hooks": []}
    for i in range(gpus):
        e = gpu_edits(i)
        all_edits["deviceNodes"] += e["deviceNodes"]
        all_edits["hooks"] += e["hooks"]
    devices.append({"name": "all", "containerEdits": all_edits})
    mounts = [
        {"hostPath": p, "containerPath": p, "options": ["ro", "nosuid", "nodev", "rbind", "rprivate"]}
        for p in LIBS + BINS
    ]
    mounts += [
        {
            "hostPath": "/run/nvidia-persistenced/socket",
            "containerPath": "/run/nvidia-persistenced/socket",
            "options": ["ro", "nosuid", "nodev", "rbind", "rprivate", "noexec"],
        }
    ]
    return {
        "cdiVersion": "0.5.0",
        "kind": f"{vendor}/gpu",
        "containerEdits": {
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [
                {"path": f"/dev/{n}", "type": "c", "major": 195 if "uvm" not in n else 511, "minor": m}
                for n, m in (
                    ("nvidia-modeset", 254),
                    ("nvidia-uvm", 0),
                    ("nvidia-uvm-tools", 1),
                    ("nvidiactl", 255),
                )
            ],
            "hooks": [
                {
                    "hookName": "createContainer",
                    "path": HOOK,
                    "args": ["nvidia-cdi-hook", "enable-cuda-compat", "--host-driver-version=550.54.15"],
                },
                {
                    "hookName": "createContainer",
                    "path": HOOK,
                    "args": [
                        "nvidia-cdi-hook",
                        "create-symlinks",
                        "--link",
                        "libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so",
                    ],
                },
                {
                    "hookName": "createContainer",
                    "path": HOOK,
                    "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"],
                },
            ],
            "mounts": mounts,
        },
        "devices": devices,
    }


def base_oci() -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), min(samples)


def process_ms(cmd: list[str], repeat: int, env: dict) -> tuple[float, float]:
    def run() -> None:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)

    run()  # warm-up: writes bytecode caches
    return timed(run, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    rep = 5 if args.quick else 20
    tmp = tempfile.mkdtemp(prefix="gpuctk-bench-cdi-")
    rows: list[tuple[str, float, float]] = []
    try:
        many = os.path.join(tmp, "many")
        one = os.path.join(tmp, "one")
        many_yaml = os.path.join(tmp, "many-yaml")
        for i in range(50):
            spec = gpu_spec(f"vendor{i:02d}.example.com")
            write_spec(spec, os.path.join(many, f"vendor{i:02d}.json"))
            write_spec(spec, os.path.join(many_yaml, f"vendor{i:02d}.yaml"))
        write_spec(gpu_spec("nvidia.com"), os.path.join(one, "nvidia.json"))
        size = os.path.getsize(os.path.join(one, "nvidia.json"))

        reg = Registry([many])
        names = [f"vendor07.example.com/gpu={i}" for i in range(8)]
        rows.append(("registry load, 50 JSON specs (17 devices each)", *timed(lambda: Registry([many]), rep)))
        rows.append(("registry load, 50 YAML specs", *timed(lambda: Registry([many_yaml]), max(3, rep // 4))))
        rows.append(("registry load, 1 JSON spec", *timed(lambda: Registry([one]), rep * 5)))
        rows.append(("resolve 8 devices (merged edits)", *timed(lambda: reg.edits_for(names), rep * 20)))
        oci = base_oci()
        rows.append(
            (
                "inject 8 devices into a config (incl. copy)",
                *timed(lambda: reg.inject_devices(copy.deepcopy(oci), names), rep * 20),
            )
        )

        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        gpuctk = os.path.join(os.path.dirname(sys.executable), "gpuctk")
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            json.dump(base_oci(), f)
        dev_args = [a for i in range(8) for a in ("--device", f"nvidia.com/gpu={i}")]
        rows.append(
            ("process: python -c pass (baseline)", *process_ms([sys.executable, "-c", "pass"], rep, env))
        )
        rows.append(
            (
                "process: python -c 'import gpuctk.cdi'",
                *process_ms([sys.executable, "-c", "import gpuctk.cdi"], rep, env),
            )
        )
        rows.append(
            (
                "process: gpuctk cdi inject, 8 devices, 1 spec",
                *process_ms([gpuctk, "cdi", "inject", "--spec-dir", one, *dev_args, cfg], rep, env),
            )
        )
        many_args = [a for i in range(8) for a in ("--device", f"vendor07.example.com/gpu={i}")]
        rows.append(
            (
                "process: gpuctk cdi inject, 8 devices, 50 specs",
                *process_ms(
                    [gpuctk, "cdi", "inject", "--spec-dir", many, *many_args, cfg], max(3, rep // 2), env
                ),
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"CDI benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, spec size {size // 1024} KiB)"
    )
    print(f"{'measurement':<52} {'median ms':>10} {'min ms':>8}")
    for label, med, best in rows:
        print(f"{label:<52} {med:>10.2f} {best:>8.2f}")


if __name__ == "__main__":
    main()
