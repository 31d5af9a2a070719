"""WSL2 mode: /dev/dxg, libdxcore.so and the NVIDIA driver store (NVIDIA/nvidia-container-toolkit
``pkg/nvcdi/lib-wsl.go``, ``internal/discover/wsl.go``)."""

from __future__ import annotations

import glob
import os
from typing import Any

from gpuctk.errors import GpuctkError
from gpuctk.generate.context import GenerateContext
from gpuctk.generate.driver import mount
from gpuctk.generate.hooks import ldcache_hook, symlinks_hook

STORE_FILES = (
    "libcuda.so.1.1",
    "libcuda_loader.so",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-ml.so.1",
    "libnvidia-ml_loader.so",
    "libnvdxgdmal.so.1",
    "nvcubins.bin",
    "nvidia-smi",
)


def find_driver_store(ctx: GenerateContext) -> str | None:
    """The driver store dir holding libcuda.so.1.1 (what dxcore reports on a real host)."""
    hits = sorted(glob.glob(ctx.root.host("/usr/lib/wsl/drivers/*/libcuda.so.1.1")))
    hits += sorted(glob.glob(ctx.root.host("/usr/lib/wsl/drivers/*/*/libcuda.so.1.1")))
    return os.path.dirname(hits[0]) if hits else None


def wsl_edits(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    dxg = ctx.edits_for_nodes(["/dev/dxg"])
    if "major" not in dxg["deviceNodes"][0]:
        raise GpuctkError(f"{ctx.dev_root}/dev/dxg: not a character device (is this a WSL2 host?)")
    dxcore = ctx.root.locate_libraries("libdxcore.so")
    if not dxcore:
        raise GpuctkError(
            f"{ctx.root.root}: libdxcore.so not found (searched /usr/lib/wsl/lib via ld.so.cache)"
        )
    store = find_driver_store(ctx)
    if store is None:
        raise GpuctkError(f"{ctx.root.root}/usr/lib/wsl/drivers: no NVIDIA driver store with libcuda.so.1.1")
    mounts = [mount(ctx.root, dxcore[0])]
    files = [os.path.join(store, f) for f in STORE_FILES if os.path.exists(os.path.join(store, f))]
    for pattern in ("*.so*", "*.bin", "*.dll"):
        for hit in sorted(glob.glob(os.path.join(store, pattern))):
            if hit not in files:
                files.append(hit)
    mounts += [mount(ctx.root, f) for f in files]
    cstore = ctx.root.container(store)
    hooks = [
        symlinks_hook(ctx.opts, ctx.hook_path, [f"{cstore}/nvidia-smi::/usr/bin/nvidia-smi"]),
        ldcache_hook(ctx.opts, ctx.hook_path, [cstore, os.path.dirname(ctx.root.container(dxcore[0]))]),
    ]
    common = {"mounts": mounts, "hooks": [h for h in hooks if h]}
    return [{"name": "all", "containerEdits": dxg}], common
