"""`gpuctk sim`: create simulated GPU nodes for demos and tests."""

from __future__ import annotations

import argparse
import json


def _create(args: argparse.Namespace) -> int:
    from gpuctk.sim import create_node

    node = create_node(
        args.profile,
        args.directory,
        driver_version=args.driver_version,
        real_devices=False if args.no_mknod else None,
    )
    if args.json:
        print(json.dumps(node.to_dict(), indent=2))
    else:
        print(f"created {node.profile} node in {node.directory}")
        print(f"  driver root / dev root: {node.root}")
        print(
            f"  driver version: {node.driver_version}; GPUs: {len(node.gpus)}; "
            f"device nodes: {node.device_mode}; ld.so.cache by: {node.ldcache}"
        )
        print(f"  inventory: {node.inventory_path}")
        if node.nvidia_smi:
            print(f"  nvidia-smi: {node.nvidia_smi}")
        extra = " --simulated-devices" if node.device_mode == "descriptor" else ""
        print(f"next: gpuctk cdi generate --driver-root {node.root} --inventory {node.inventory_path}{extra}")
    return 0


def _list_profiles(args: argparse.Namespace) -> int:
    from gpuctk.sim.profiles import PROFILES, profile_data

    rows = []
    for p in PROFILES:
        d = profile_data(p)
        rows.append(
            {
                "profile": p,
                "platform": d["platform"],
                "driver_version": d["driver_version"],
                "gpus": len(d["gpus"]),
                "gpu_name": d["gpus"][0]["name"] if d["gpus"] else None,
                "mig_devices": sum(len(g["mig_devices"]) for g in d["gpus"]),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(
                f"{r['profile']:<14} {r['platform']:<6} driver {r['driver_version']:<11} "
                f"{r['gpus']}x {r['gpu_name'] or '-'}"
                + (f", {r['mig_devices']} MIG devices" if r["mig_devices"] else "")
            )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from gpuctk.sim.profiles import PROFILES

    p = subparsers.add_parser(
        "create",
        help="create a simulated GPU node (driver root, devices, inventory)",
        description="Lay out a simulated GPU node in DIR: DIR/root is the driver and dev "
        "root, DIR/inventory.json the GPU inventory, DIR/node.json the facts.",
    )
    p.add_argument("--profile", required=True, choices=PROFILES)
    p.add_argument("--driver-version", default=None, help="override the profile's driver version")
    p.add_argument("--no-mknod", action="store_true", help="descriptor files instead of real device nodes")
    p.add_argument("--json", action="store_true", help="print node.json")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=_create)
    lp = subparsers.add_parser("list-profiles", help="list the simulation profiles")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=_list_profiles)
