"""`make bench`: run every benchmarks/bench_*.py script in turn and print their tables.

Each script is standalone (stdlib + the venv), measures whole processes or calls, and
prints its own results; nothing here asserts timings. Record figures in docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    scripts = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    only = set(sys.argv[1:])
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, kernel {platform.release()}"
    )
    failed = 0
    for name in scripts:
        if only and name not in only and name[6:-3] not in only:
            continue
        print(f"\n=== {name}", flush=True)
        rc = subprocess.call([sys.executable, os.path.join(HERE, name)])
        if rc != 0:
            print(f"!!! {name} exited {rc}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
