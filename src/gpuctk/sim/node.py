"""Simulated GPU nodes: a driver root, a dev root and an inventory on disk.

``create_node(profile, directory)`` lays out ``directory/root`` (driver root and dev
root), ``directory/inventory.json`` (the fixture-backend inventory) and
``directory/node.json`` (the facts below). Device nodes are real character devices
(mknod with NVIDIA majors/minors) when running as root, else JSON descriptor files that
only :func:`gpuctk.sim.devstat.descriptor_stat_device` understands (install it with
:func:`gpuctk.sim.devstat.use_descriptor_devices`; production code reads real nodes only).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

from gpuctk.errors import GpuctkError
from gpuctk.sim.profiles import PROFILES, profile_data

__all__ = ["PROFILES", "SimNode", "create_node", "load_node"]


@dataclass
class SimNode:
    profile: str
    directory: str
    root: str
    driver_root: str
    dev_root: str
    inventory_path: str
    nvidia_smi: str | None
    gpus: list[dict[str, Any]] = field(default_factory=list)
    driver_version: str = ""
    device_mode: str = "descriptor"
    ldcache: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def create_node(
    profile: str, directory: str, *, driver_version: str | None = None, real_devices: bool | None = None
) -> SimNode:
    """Create (or recreate) a simulated node of ``profile`` under ``directory``."""
    from gpuctk.sim.build import Builder, build_dgpu, build_jetson, build_wsl

    data = profile_data(profile, driver_version)
    directory = os.path.abspath(directory)
    root = os.path.join(directory, "root")
    try:
        if os.path.lexists(root):
            shutil.rmtree(root)
        os.makedirs(root)
    except OSError as exc:
        raise GpuctkError(
            f"{directory}: cannot create simulated node directory: {exc.strerror or exc}"
        ) from None
    if real_devices is None:
        real_devices = os.geteuid() == 0
    template = data.pop("template")
    inventory = {"source": f"gpuctk-sim:{profile}", **{k: v for k, v in data.items() if k != "driver_store"}}
    b = Builder(root, data["arch"], real_devices)
    try:
        if data["platform"] == "tegra":
            build_jetson(b, data)
        elif data["platform"] == "wsl":
            inventory["driver_store"] = data["driver_store"]
            build_wsl(b, data, template)
        else:
            build_dgpu(b, data, template)
    except OSError as exc:
        raise GpuctkError(f"sim create: cannot build {profile} node in {directory}: {exc}") from None
    smi = {"tegra": "/usr/bin/nvidia-smi", "wsl": "/usr/lib/wsl/lib/nvidia-smi"}.get(
        data["platform"], "/usr/bin/nvidia-smi"
    )
    inventory_path = os.path.join(directory, "inventory.json")
    _write_json(inventory_path, inventory)
    node = SimNode(
        profile=profile,
        directory=directory,
        root=root,
        driver_root=root,
        dev_root=root,
        inventory_path=inventory_path,
        nvidia_smi=os.path.join(root, smi.lstrip("/")),
        gpus=[
            {
                "index": g["index"],
                "uuid": g["uuid"],
                "minor": g["minor"],
                "name": g["name"],
                "pci_bus_id": g.get("pci_bus_id"),
                "mig_devices": [
                    {"index": m["index"], "uuid": m["uuid"], "profile": m["profile"]}
                    for m in g.get("mig_devices", [])
                ],
            }
            for g in data["gpus"]
        ],
        driver_version=data["driver_version"],
        device_mode="mknod" if real_devices else "descriptor",
        ldcache=b.ldconfig_method,
    )
    _write_json(os.path.join(directory, "node.json"), node.to_dict())
    return node


def _write_json(path: str, data: dict[str, Any]) -> None:
    from gpuctk.fileio import atomic_write

    try:
        atomic_write(path, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write: {exc.strerror or exc}") from None


def load_node(directory: str) -> SimNode:
    path = os.path.join(directory, "node.json")
    try:
        with open(path) as f:
            return SimNode(**json.load(f))
    except (OSError, ValueError, TypeError) as exc:
        raise GpuctkError(f"{path}: not a simulated node: {exc}") from None
