"""gVisor contract: cost of the check and of the runsc-ready producers (the shim runs
``runsc_ready_oci_spec`` on every sandboxed GPU container's create).

Standalone: stdlib + the venv. Prints a table; no assertions on timings.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))

import gvisor_fixtures as fx  # noqa: E402
from gvisor_inject import inject  # noqa: E402

from gpuctk.sandbox.gvisor import analyze, load_driver_table, runsc_ready_cdi_spec, runsc_ready_oci_spec  # noqa: E402


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def fresh_ms(code: str, n: int = 15) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    rows: list[tuple[str, str]] = []
    base = fresh_ms("pass")
    imp = fresh_ms("import gpuctk.sandbox.gvisor")
    rows.append(("import gpuctk.sandbox.gvisor (fresh process, minus bare python)", f"{imp - base:.1f} ms"))
    shim = fresh_ms("import json, re, gpuctk.runtime.main")
    shim_gv = fresh_ms("import json, re, gpuctk.runtime.main, gpuctk.sandbox.gvisor")
    rows.append(
        (
            "  … on top of what the shim already imports (json, re, gpuctk.runtime.main)",
            f"{shim_gv - shim:.1f} ms",
        )
    )
    table = load_driver_table()
    rows.append(
        ("load_driver_table() (importlib.resources + json)", f"{per_call_us(load_driver_table, 2000):.0f} µs")
    )
    cdi = fx.cdi_flow()
    rows.append(
        (
            "analyze() cdi-flow fixture",
            f"{per_call_us(lambda: analyze(cdi, fx.DRIVER, driver_table=table), 3000):.0f} µs",
        )
    )
    leg = fx.legacy_flow()
    rows.append(
        (
            "analyze() legacy-flow fixture",
            f"{per_call_us(lambda: analyze(leg, fx.DRIVER, driver_table=table), 3000):.0f} µs",
        )
    )

    from gpuctk.generate import GenerateOptions, generate_spec
    from gpuctk.sim import create_node

    with tempfile.TemporaryDirectory(prefix="gpuctk-bench-gv-") as d:
        node = create_node("dgx-h100", d)
        spec, _ = generate_spec(
            GenerateOptions(
                mode="nvml",
                driver_root=node.driver_root,
                dev_root=node.dev_root,
                inventory=node.inventory_path,
            )
        )
    rows.append(
        (
            f"runsc_ready_cdi_spec() dgx-h100 spec ({len(spec['devices'])} devices, "
            f"{len(json.dumps(spec)) // 1024} KiB)",
            f"{per_call_us(lambda: runsc_ready_cdi_spec(spec), 300):.0f} µs",
        )
    )
    oci = inject(fx._base(["NVIDIA_VISIBLE_DEVICES=all"]), spec, ["0"], append_env=True)
    copy_us = per_call_us(lambda: copy.deepcopy(oci), 1000)
    ready_us = per_call_us(lambda: runsc_ready_oci_spec(copy.deepcopy(oci)), 1000) - copy_us
    rows.append(
        ("runsc_ready_oci_spec() on an injected H100 GPU-0 spec (deepcopy subtracted)", f"{ready_us:.0f} µs")
    )
    ready = copy.deepcopy(oci)
    runsc_ready_oci_spec(ready)
    rows.append(
        (
            "analyze() on that spec after runsc_ready",
            f"{per_call_us(lambda: analyze(ready, fx.DRIVER, driver_table=table), 2000):.0f} µs",
        )
    )
    gpuctk = os.path.join(os.path.dirname(sys.executable), "gpuctk")
    path = os.path.join(ROOT, "tests", "data", "sandbox", "flows", "cdi.json")
    if os.path.exists(gpuctk):
        times = []
        for _ in range(9):
            t = time.perf_counter()
            subprocess.run(
                [gpuctk, "oci", "check", "--sandbox", "gvisor", path], capture_output=True, check=False
            )
            times.append((time.perf_counter() - t) * 1000)
        rows.append(
            (
                "`gpuctk oci check --sandbox gvisor` whole command (median)",
                f"{statistics.median(times):.0f} ms",
            )
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'gVisor contract':<{width}}  time")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
