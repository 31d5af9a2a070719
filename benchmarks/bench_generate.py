"""Benchmark: `gpuctk cdi generate` on a simulated dgx-h100 (whole process) and JIT specs.

Prints min / median over several runs. Targets (2-core machine): generation < 150 ms;
a warm JIT call adds (much) less than a cdi-mode create. No asserts.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))


def _stats(samples: list[float]) -> tuple[float, float]:
    return min(samples) * 1000, statistics.median(samples) * 1000


def _shim_creates(tmp: str, node) -> list[tuple[str, float, float]]:  # type: ignore[no-untyped-def]
    """Whole-process `gpuctk-runtime create` (low-level runtime = /bin/true): jit-cdi with a
    warm cache vs cdi mode reading a generated spec from a spec dir."""
    import json

    shim = os.path.join(os.path.dirname(sys.executable), "gpuctk-runtime")
    if not os.path.exists(shim) or not os.path.exists("/bin/true"):
        return []
    gpuctk = os.path.join(os.path.dirname(sys.executable), "gpuctk")
    cdi_dir = os.path.join(tmp, "cdi")
    subprocess.run(
        [
            gpuctk,
            "cdi",
            "generate",
            "--driver-root",
            node.root,
            "--inventory",
            node.inventory_path,
            "--output",
            os.path.join(cdi_dir, "nvidia.yaml"),
            "--quiet",
        ],
        check=True,
    )
    bundle = os.path.join(tmp, "bundle")
    os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {},
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"]},
    }
    confs = {
        "jit-cdi": f'[nvidia-container-cli]\nroot = "{node.root}"\n[nvidia-container-runtime]\nmode = "jit-cdi"\n'
        'runtimes = ["/bin/true"]\n',
        "cdi": '[nvidia-container-runtime]\nmode = "cdi"\nruntimes = ["/bin/true"]\n'
        f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{cdi_dir}"]\n',
    }
    rows = []
    for mode, text in confs.items():
        conf = os.path.join(tmp, f"{mode}.toml")
        with open(conf, "w") as f:
            f.write(text)
        env = dict(
            os.environ, NVIDIA_CTK_CONFIG_FILE_PATH=conf, GPUCTK_JIT_CACHE_DIR=os.path.join(tmp, "shim-jit")
        )
        samples = []
        for i in range(11):
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(config, f)
            t = time.perf_counter()
            p = subprocess.run(
                [shim, "create", "--bundle", bundle, f"bench-{i}"], env=env, capture_output=True
            )
            elapsed = time.perf_counter() - t
            if p.returncode != 0:
                return [*rows, (f"gpuctk-runtime create ({mode}) FAILED", 0.0, 0.0)]
            if i:  # the first jit-cdi create fills the cache
                samples.append(elapsed)
        label = "warm cache" if mode == "jit-cdi" else "spec dir"
        rows.append((f"gpuctk-runtime create, {mode} ({label})", *_stats(samples)))
    return rows


def main() -> int:
    from gpuctk.sim import create_node

    gpuctk = os.path.join(os.path.dirname(sys.executable), "gpuctk")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpuctk-bench-gen-") as tmp:
        t = time.perf_counter()
        node = create_node("dgx-h100", os.path.join(tmp, "node"))
        rows.append(("sim create dgx-h100 (in-process)", *_stats([time.perf_counter() - t])))

        for fmt in ("yaml", "json"):
            cmd = [
                gpuctk,
                "cdi",
                "generate",
                "--driver-root",
                node.root,
                "--inventory",
                node.inventory_path,
                "--output",
                os.path.join(tmp, f"nvidia.{fmt}"),
                "--quiet",
            ]
            samples = []
            for _ in range(10):
                t = time.perf_counter()
                subprocess.run(cmd, check=True)
                samples.append(time.perf_counter() - t)
            rows.append((f"gpuctk cdi generate ({fmt}, whole process)", *_stats(samples)))

        baseline = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            baseline.append(time.perf_counter() - t)
        rows.append(("python -c pass (interpreter floor)", *_stats(baseline)))

        from gpuctk.generate import GenerateOptions, generate_spec

        samples = []
        for _ in range(10):
            t = time.perf_counter()
            generate_spec(GenerateOptions(driver_root=node.root, inventory=node.inventory_path))
            samples.append(time.perf_counter() - t)
        rows.append(("generate_spec (in-process)", *_stats(samples)))

        os.environ["GPUCTK_JIT_CACHE_DIR"] = os.path.join(tmp, "jit-cache")
        import gpuctk.generate.jit as jit

        t = time.perf_counter()
        jit.jit_spec(["0"], {}, driver_root=node.root)
        rows.append(("jit_spec cold (discovery + cache write)", *_stats([time.perf_counter() - t])))
        samples = []
        for _ in range(50):
            jit._memo.clear()  # as in a fresh shim process: read the disk cache
            t = time.perf_counter()
            jit.jit_spec(["0"], {}, driver_root=node.root)
            samples.append(time.perf_counter() - t)
        rows.append(("jit_spec warm (disk cache, new process state)", *_stats(samples)))
        code = (
            "import time; t=time.perf_counter(); import gpuctk.generate.jit as j; "
            f"j.jit_spec(['0'], {{}}, driver_root={node.root!r}); print(time.perf_counter()-t)"
        )
        samples = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=dict(os.environ),
                ).stdout
            )
            for _ in range(10)
        ]
        rows.append(("jit_spec warm incl. import (fresh process)", *_stats(samples)))

        rows += _shim_creates(tmp, node)

    print(f"{'benchmark':<48} {'min ms':>8} {'median ms':>10}")
    for name, lo, med in rows:
        print(f"{name:<48} {lo:8.1f} {med:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
