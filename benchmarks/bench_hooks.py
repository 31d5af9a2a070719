"""gpuctk-hook as whole processes (what runc pays per container start).

- ``create-symlinks`` with 60 ``--link`` arguments (first run creates, later runs find the
  links correct and skip them; both shown), target < 40 ms;
- ``update-ldcache`` (conf files + namespaces + pivot_root + sealed host ldconfig) against
  plain ``ldconfig -r <root>`` on the same root, target: within 30 ms of ldconfig;
- the interpreter floor (``python -S -c pass`` and ``python -c "import gpuctk.hooks.main"``)
  for context.

Median of N runs (default 21, ``--runs``). update-ldcache needs root. No assertions.
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

HOOK = os.path.join(os.path.dirname(sys.executable), "gpuctk-hook")


def timed(cmd: list[str], stdin: str | None = None, runs: int = 21, before=None) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        samples.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:3])}… failed: {p.stderr.strip()}")
    return statistics.median(samples) * 1000


def make_root(base: str) -> tuple[str, str]:
    bundle = os.path.join(base, "bundle")
    root = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(root, "proc"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump({"root": {"path": "rootfs"}}, f)
    libdir = "/lib/x86_64-linux-gnu" if os.path.isdir("/lib/x86_64-linux-gnu") else "/lib/aarch64-linux-gnu"
    dest = os.path.join(root, "usr/local/nvidia/lib64")
    os.makedirs(dest)
    for name in sorted(os.listdir(libdir))[:400]:  # a realistic lib dir for ldconfig to scan
        src = os.path.join(libdir, name)
        if ".so" in name and os.path.isfile(src) and not os.path.islink(src):
            shutil.copy(src, dest)
    return bundle, json.dumps({"bundle": bundle})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    rows: list[tuple[str, float, str]] = []
    # an installed package has its bytecode compiled; this checkout may run with
    # PYTHONDONTWRITEBYTECODE, which would make every hook run recompile its modules
    import gpuctk

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(gpuctk.__file__)], check=True)
    with tempfile.TemporaryDirectory(prefix="gpuctk-bench-hooks-") as tmp:
        bundle, state = make_root(tmp)
        root = os.path.join(bundle, "rootfs")
        rows.append(
            ("python -S -c pass (floor)", timed([sys.executable, "-S", "-c", "pass"], runs=args.runs), "")
        )
        rows.append(
            (
                "python -c 'import gpuctk.hooks.main'",
                timed([sys.executable, "-c", "import gpuctk.hooks.main"], runs=args.runs),
                "",
            )
        )
        links = []
        for i in range(60):
            links += ["--link", f"libnvidia-{i}.so.550.54.15::/usr/lib/x86_64-linux-gnu/libnvidia-{i}.so.1"]

        def clean_links() -> None:
            shutil.rmtree(os.path.join(root, "usr/lib"), ignore_errors=True)

        rows.append(
            (
                "create-symlinks x60 (fresh)",
                timed([HOOK, "create-symlinks", *links], state, args.runs, before=clean_links),
                "target < 40",
            )
        )
        rows.append(
            (
                "create-symlinks x60 (all present)",
                timed([HOOK, "create-symlinks", *links], state, args.runs),
                "target < 40",
            )
        )
        if os.geteuid() == 0:
            ldconfig = "/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else "/usr/sbin/ldconfig"
            subprocess.run(
                [HOOK, "update-ldcache", "--folder", "/usr/local/nvidia/lib64"],
                input=state,
                check=True,
                capture_output=True,
                text=True,
            )  # writes the conf files ldconfig -r then reads too
            plain = timed([ldconfig, "-r", root], runs=args.runs)
            hook = timed([HOOK, "update-ldcache", "--folder", "/usr/local/nvidia/lib64"], state, args.runs)
            rows.append(("ldconfig -r ROOT (plain)", plain, ""))
            rows.append(("update-ldcache", hook, f"+{hook - plain:.1f} ms (target +30)"))
        else:
            rows.append(("update-ldcache", float("nan"), "skipped: needs root"))
    print(f"{'what':40} {'median ms':>10}  note   (runs={args.runs})")
    for what, ms, note in rows:
        print(f"{what:40} {ms:10.1f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
