"""Engine configuration: plan cost in-process and whole-command cost of `gpuctk runtime …`.

Standalone: stdlib + the venv. Prints a table; no assertions on timings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from gpuctk.engines import containerd, docker  # noqa: E402
from gpuctk.engines.model import ConfigureOptions  # noqa: E402

INPUTS = os.path.join(ROOT, "tests", "data", "engines", "inputs")
GPUCTK = os.path.join(os.path.dirname(sys.executable), "gpuctk")


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def wall(argv: list[str], n: int) -> float:
    best = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        best.append((time.perf_counter() - t) * 1000)
    best.sort()
    return best[len(best) // 2]


def main() -> None:
    with open(os.path.join(INPUTS, "containerd-v2-comments.toml")) as f:
        ctd_text = f.read()
    with open(os.path.join(INPUTS, "daemon.json")) as f:
        docker_text = f.read()
    ctd = ConfigureOptions(
        engine="containerd",
        config="/c.toml",
        drop_in="/d/99.toml",
        set_as_default=True,
        enable_cdi=True,
        engine_version=(1, 7, 12),
    )
    inplace = ConfigureOptions(
        engine="containerd",
        config="/c.toml",
        drop_in="",
        set_as_default=True,
        enable_cdi=True,
        engine_version=(1, 7, 12),
    )
    dk = ConfigureOptions(engine="docker", config="/daemon.json", set_as_default=True, enable_cdi=True)
    rows = [
        (
            "plan containerd drop-in (v2, 25-line config)",
            per_call(lambda: containerd.plan_configure(ctd, {"/c.toml": ctd_text}.get), 200),
        ),
        (
            "plan containerd in place (tomlkit edit)",
            per_call(lambda: containerd.plan_configure(inplace, {"/c.toml": ctd_text}.get), 200),
        ),
        (
            "plan docker daemon.json",
            per_call(lambda: docker.plan_configure(dk, {"/daemon.json": docker_text}.get), 200),
        ),
    ]
    tmp = tempfile.mkdtemp(prefix="gpuctk-bench-eng-")
    try:
        cfg = os.path.join(tmp, "config.toml")
        with open(cfg, "w") as f:
            f.write(ctd_text)
        base = [
            GPUCTK,
            "runtime",
            "configure",
            "--config",
            cfg,
            "--drop-in-config",
            os.path.join(tmp, "conf.d", "99-nvidia.toml"),
            "--engine-version",
            "1.7.12",
            "--set-as-default",
        ]
        rows.append(("`gpuctk runtime configure` first run (process)", wall(base, 1)))
        rows.append(("`gpuctk runtime configure` repeat, no-op (process)", wall(base, 5)))
        rows.append(
            (
                "`gpuctk runtime detect --no-dump` (process)",
                wall(
                    [GPUCTK, "runtime", "detect", "--runtime", "containerd", "--config", cfg, "--no-dump"], 5
                ),
            )
        )
        if shutil.which("containerd"):
            rows.append(
                (
                    "`gpuctk runtime detect` with config dump (process)",
                    wall([GPUCTK, "runtime", "detect", "--runtime", "containerd"], 3),
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'operation'.ljust(width)}  ms")
    for name, ms in rows:
        print(f"{name.ljust(width)}  {ms:8.2f}")


if __name__ == "__main__":
    main()
