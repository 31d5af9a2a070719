"""gpuctk-runtime's create overhead: create+delete through the shim vs runc alone.

The same busybox bundle is created (and deleted) with runc directly, and through
gpuctk-runtime in cdi mode injecting 8 devices from an 8-GPU CDI spec dir (real char
device nodes in a temp dev root, a control node, env and a mount per device). Also shown:
the shim alone (low-level runtime replaced by /bin/true) for a GPU and a non-GPU spec.
Median of N runs (default 21, ``--runs``). Needs root (runc, mknod). No assertions.

Standalone: stdlib + the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.containers import make_bundle  # noqa: E402

SHIM = os.path.join(os.path.dirname(sys.executable), "gpuctk-runtime")
GPUS = 8


def make_node(base: str) -> str:
    """An 8-GPU CDI spec dir; returns its path."""
    dev = os.path.join(base, "dev")
    os.makedirs(dev)
    nodes = []
    for i in range(GPUS):
        p = os.path.join(dev, f"nvidia{i}")
        os.mknod(p, 0o666 | 0o020000, os.makedev(195, i))
        nodes.append(p)
    ctl = os.path.join(dev, "nvidiactl")
    os.mknod(ctl, 0o666 | 0o020000, os.makedev(195, 255))
    lib = os.path.join(base, "libcuda.so.1")
    with open(lib, "w") as f:
        f.write("fake\n")
    spec = {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": str(i), "containerEdits": {"deviceNodes": [{"path": f"/dev/nvidia{i}", "hostPath": p}]}}
            for i, p in enumerate(nodes)
        ],
        "containerEdits": {
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [{"path": "/dev/nvidiactl", "hostPath": ctl}],
            "mounts": [
                {
                    "hostPath": lib,
                    "containerPath": "/usr/lib/libcuda.so.1",
                    "options": ["ro", "nosuid", "nodev", "bind"],
                }
            ],
        },
    }
    spec_dir = os.path.join(base, "cdi")
    os.makedirs(spec_dir)
    with open(os.path.join(spec_dir, "bench.json"), "w") as f:
        json.dump(spec, f)
    return spec_dir


def write_config(path: str, spec_dir: str, runtimes: list[str]) -> None:
    with open(path, "w") as f:
        f.write(
            f'[nvidia-container-runtime]\nmode = "cdi"\nruntimes = {json.dumps(runtimes)}\n'
            f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{spec_dir}"]\n'
        )


def one_run(i: int, bundle: str, original: bytes, create_cmd, env: dict, delete_cmd=None) -> float:  # type: ignore[no-untyped-def]
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(original)
    cid = f"gpuctk-bench-{os.getpid()}-{i}"
    # output to a file, not a pipe: the created container's init keeps inherited pipes open
    with tempfile.TemporaryFile() as errf:
        t = time.perf_counter()
        r = subprocess.run(
            create_cmd(cid), env=env, stdout=subprocess.DEVNULL, stderr=errf, stdin=subprocess.DEVNULL
        )
        if delete_cmd:
            subprocess.run(delete_cmd(cid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            errf.seek(0)
            raise SystemExit(f"failed: {' '.join(create_cmd(cid))}: {errf.read().decode(errors='replace')}")
    return dt * 1000


def interleaved(n: int, cases: list[tuple]) -> list[tuple[str, list[float]]]:
    """Run the cases round-robin (so load drift on a shared machine hits them all alike);
    the first round only warms caches (pyc, page cache, the config cache)."""
    times: list[list[float]] = [[] for _ in cases]
    for i in range(n + 1):
        for k, (_name, *run_args) in enumerate(cases):
            dt = one_run(i * 100 + k, *run_args)
            if i:
                times[k].append(dt)
    return [(c[0], t) for c, t in zip(cases, times)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_runtime: needs root (runc, mknod); skipped")
        return 0
    runc = shutil.which("runc") or "/usr/sbin/runc"
    base = tempfile.mkdtemp(prefix="gpuctk-bench-rt-")
    try:
        spec_dir = make_node(base)
        bundle = make_bundle(os.path.join(base, "bundle"), ["sleep", "1"])
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            plain = f.read()
        spec = json.loads(plain)
        spec["process"]["env"].append("NVIDIA_VISIBLE_DEVICES=" + ",".join(str(i) for i in range(GPUS)))
        gpu = json.dumps(spec, indent=2).encode()
        state = os.path.join(base, "state")
        cfg_runc = os.path.join(base, "config-runc.toml")
        cfg_true = os.path.join(base, "config-true.toml")
        write_config(cfg_runc, spec_dir, [runc])
        write_config(cfg_true, spec_dir, ["/bin/true"])
        # an installed gpuctk has its bytecode compiled; PYTHONDONTWRITEBYTECODE (set in some dev
        # shells) would make every run recompile the modules edited since the last .pyc
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env_runc = {**base_env, "NVIDIA_CTK_CONFIG_FILE_PATH": cfg_runc}
        env_true = {**base_env, "NVIDIA_CTK_CONFIG_FILE_PATH": cfg_true}

        # the same spec already injected (what runc is given after the shim): runc's own extra work
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(gpu)
        subprocess.run([SHIM, "create", "--bundle", bundle, "prep"], env=env_true, check=True)
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            injected = f.read()

        def create(exe: str):  # type: ignore[no-untyped-def]
            return lambda cid: [exe, "--root", state, "create", "--bundle", bundle, cid]

        def delete(cid: str) -> list[str]:
            return [runc, "--root", state, "delete", "--force", cid]

        n = args.runs
        floor = lambda cid: [sys.executable, "-I", "-S", "-c", "pass"]  # noqa: E731
        site_floor = lambda cid: [sys.executable, "-c", "pass"]  # noqa: E731
        rows = interleaved(
            n,
            [
                ("runc create+delete (no GPU)", bundle, plain, create(runc), dict(base_env), delete),
                (
                    f"runc create+delete, spec pre-injected with {GPUS} GPUs",
                    bundle,
                    injected,
                    create(runc),
                    dict(base_env),
                    delete,
                ),
                (
                    f"gpuctk-runtime create+delete, {GPUS} GPUs injected",
                    bundle,
                    gpu,
                    create(SHIM),
                    env_runc,
                    delete,
                ),
                (
                    "gpuctk-runtime create+delete, no GPU (pass-through)",
                    bundle,
                    plain,
                    create(SHIM),
                    env_runc,
                    delete,
                ),
                (f"shim alone -> /bin/true, {GPUS} GPUs", bundle, gpu, create(SHIM), env_true),
                ("shim alone -> /bin/true, no GPU", bundle, plain, create(SHIM), env_true),
                (
                    "python -I -S -c pass (interpreter floor, as the sh front end starts it)",
                    bundle,
                    plain,
                    floor,
                    dict(base_env),
                ),
                (
                    "python -c pass (interpreter + site, as a pip console script starts)",
                    bundle,
                    plain,
                    site_floor,
                    dict(base_env),
                ),
            ],
        )
    finally:
        subprocess.run(
            [
                "sh",
                "-c",
                f"for c in $({runc} --root {base}/state list -q 2>/dev/null); do "
                f"{runc} --root {base}/state delete --force $c; done",
            ],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
    print(f"gpuctk-runtime create overhead (median of {args.runs} runs, ms; {os.cpu_count()} CPUs)")
    print(f"{'case':64} {'median':>8} {'min':>8} {'max':>8}")
    for name, t in rows:
        print(f"{name:64} {statistics.median(t):8.1f} {min(t):8.1f} {max(t):8.1f}")
    med = [statistics.median(t) for _, t in rows]
    print(
        f"\nadded by gpuctk, {GPUS} GPUs (shim vs runc on the pre-injected spec): {med[2] - med[1]:+.1f} ms "
        f"(ratio {med[2] / med[1]:.2f}x; target <= 15 ms)"
    )
    print(
        f"added by gpuctk, no GPU (pass-through vs runc): {med[3] - med[0]:+.1f} ms (ratio {med[3] / med[0]:.2f}x)"
    )
    print(f"GPU container vs plain runc container: {med[2] - med[0]:+.1f} ms (ratio {med[2] / med[0]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
