"""The state one spec generation carries: options, driver root, device root, hook path, inventory.

Shared by the mode builders (`build.py`, `csvmode.py`, `wsl.py`).
"""

from __future__ import annotations

import os
from typing import Any

from gpuctk.discover import devices as D
from gpuctk.discover.inventory import select_inventory
from gpuctk.discover.rootfs import DriverRoot
from gpuctk.errors import GpuctkError
from gpuctk.generate.hooks import resolve_hook_path
from gpuctk.generate.options import GenerateOptions

__all__ = ["GenerateContext", "device_names"]


class GenerateContext:
    """Options plus what generation learns on the way (warnings, the inventory, once)."""

    def __init__(self, opts: GenerateOptions) -> None:
        self.opts = opts
        self.warnings: list[str] = []
        self.root = DriverRoot(opts.driver_root or "/", opts.library_search_paths)
        self.dev_root = os.path.abspath(opts.dev_root or opts.driver_root or "/")
        self.hook_path = resolve_hook_path(opts.hook_path)
        self.add_gids = "no-additional-gids-for-device-nodes" not in opts.feature_flags
        self._inventory: dict[str, Any] | None = None

    def inventory(self) -> dict[str, Any]:
        if self._inventory is None:
            self._inventory = select_inventory(
                self.opts.inventory,
                dev_root=self.dev_root,
                driver_root=self.root.root,
                root=self.root,
                warnings=self.warnings,
            )
        return self._inventory

    def node(self, path: str) -> tuple[dict[str, Any], list[int]]:
        return D.device_node_edit(self.dev_root, path, additional_gids=self.add_gids)

    def edits_for_nodes(self, paths: list[str]) -> dict[str, Any]:
        nodes, gids = [], []
        for p in paths:
            n, g = self.node(p)
            nodes.append(n)
            gids += g
        edits: dict[str, Any] = {"deviceNodes": nodes}
        if gids:
            edits["additionalGids"] = sorted(set(gids))
        return edits

    def driver_version(self) -> str:
        version = None
        # NVML first when it can be there (the host root); it is also cached for the GPUs
        inv = self.inventory() if self.root.root == "/" and self.dev_root == "/" else self._inventory
        if inv is not None and str(inv.get("source", "")).startswith("nvml"):
            version = inv.get("driver_version")
        version = version or self.root.driver_version_from_libraries()
        if not version:
            inv = self.inventory()
            version = inv.get("driver_version")
        if not version or "*" in version:
            raise GpuctkError(
                f"{self.root.root}: cannot determine the NVIDIA driver version "
                "(no libcuda.so.<version> or libnvidia-ml.so.<version> found)"
            )
        return str(version)


def device_names(
    kind: str, index: str, uuid: str | None, strategies: list[str], warnings: list[str]
) -> list[str]:
    out = []
    for s in strategies:
        if s == "index":
            out.append(index)
        elif s == "type-index":
            out.append(("gpu" if kind == "gpu" else "mig") + index)
        elif s == "uuid":
            if uuid:
                out.append(uuid)
            else:
                warnings.append(f"device {index}: no UUID known (inventory without NVML); uuid name skipped")
    return list(dict.fromkeys(out))
