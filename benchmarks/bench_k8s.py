"""Kubernetes area: planner, Allocate shapes, schema validation, CLI wall time, agent round trip.

Standalone: stdlib + the venv. Prints a table; no assertions on timings.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from gpuctk.k8s.deviceplugin import PluginConfig, allocate_response  # noqa: E402
from gpuctk.k8s.facts import facts_from_document  # noqa: E402
from gpuctk.k8s.manifests import runtime_class  # noqa: E402
from gpuctk.k8s.planner import plan  # noqa: E402
from gpuctk.k8s.validate import validate_object  # noqa: E402
from support.fakekube import FakeKube, nvidia_node  # noqa: E402

GPUCTK = os.path.join(os.path.dirname(sys.executable), "gpuctk")
CLUSTERS = os.path.join(ROOT, "tests", "data", "k8s", "clusters")
SMI_XML = os.path.join(ROOT, "tests", "data", "k8s", "nvidia-smi", "qx-h100.xml")


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def wall(argv: list[str], n: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False, env=env)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


def big_cluster(n: int) -> dict:
    runtimes = [
        "containerd://2.0.5",
        "containerd://1.7.12-0ubuntu2~22.04.1",
        "cri-o://1.29.1",
        "containerd://1.6.28",
        "docker://24.0.7",
    ]
    nodes = [nvidia_node(f"n{i}", runtimes[i % len(runtimes)], gpus=8) for i in range(n)]
    rc = {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": "nvidia"},
        "handler": "nvidia",
    }
    return {"nodes": nodes, "runtimeClasses": [rc]}


def main() -> None:
    rows = []
    doc = big_cluster(1000)
    rows.append(
        ("facts + plan, 1000 nodes / 5 groups", per_call(lambda: plan(facts_from_document(doc)), 20), "ms")
    )
    cfg = PluginConfig(device_list_strategy="cdi-annotations,cdi-cri")
    ids = [f"GPU-{i}" for i in range(8)]
    rows.append(
        (
            "allocate_response, 8 GPUs, cdi-annotations,cdi-cri",
            per_call(lambda: allocate_response(cfg, ids, response_id="x"), 2000) * 1000,
            "us",
        )
    )
    rc = runtime_class("nvidia")
    t = time.perf_counter()
    validate_object(rc)
    rows.append(
        ("schema validation, first RuntimeClass (schema load)", (time.perf_counter() - t) * 1000, "ms")
    )
    rows.append(("schema validation, RuntimeClass (warm)", per_call(lambda: validate_object(rc), 50), "ms"))
    fixture = os.path.join(CLUSTERS, "mixed-containerd-crio.yaml")
    rows.append(
        (
            "`gpuctk k8s plan --from FILE` wall (median of 5)",
            wall([GPUCTK, "k8s", "plan", "--from", fixture], 5),
            "ms",
        )
    )
    rows.append(
        (
            "`gpuctk k8s manifests --runtime-version` wall (median of 5)",
            wall([GPUCTK, "k8s", "manifests", "--runtime-version", "containerd://2.0.5"], 5),
            "ms",
        )
    )
    with tempfile.TemporaryDirectory(prefix="gpuctk-bench-k8s-") as d:
        smi = os.path.join(d, "nvidia-smi")
        with open(smi, "w") as f:
            f.write(f"#!/bin/sh\nexec cat '{SMI_XML}'\n")
        os.chmod(smi, os.stat(smi).st_mode | stat.S_IXUSR)
        rows.append(
            (
                "`gpuctk snapshot --no-kubernetes` (8x H100 capture) wall",
                wall([GPUCTK, "snapshot", "--no-kubernetes", "--nvidia-smi", smi, "--host-root", d], 5),
                "ms",
            )
        )
        kc = os.path.join(d, "kubeconfig")
        fake = FakeKube(gpu_path=d, max_lifetime=120)
        fake.kubelet_env["KUBECONFIG"] = kc
        with fake:
            fake.write_kubeconfig(kc)
            fake.add(nvidia_node("gpu-node-1", "containerd://2.0.5", gpus=8))
            fake.add(
                {
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": "nvidia"},
                    "handler": "nvidia",
                }
            )
            argv = [
                GPUCTK,
                "snapshot",
                "--agent",
                "--kubeconfig",
                kc,
                "--runtime-class",
                "nvidia",
                "-q",
                "--image",
                "gpuctk:bench",
            ]
            rows.append(
                ("`snapshot --agent --runtime-class` round trip, fake API server", wall(argv, 3), "ms")
            )
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  {'value':>10}")
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value:>10.2f} {unit}")


if __name__ == "__main__":
    main()
