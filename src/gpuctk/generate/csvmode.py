"""CSV (Tegra/Jetson) mode: mount specs from CSV files become edits (NVIDIA/nvidia-container-toolkit
``internal/platform-support/tegra/*.go``, ``pkg/nvcdi/lib-csv.go``)."""

from __future__ import annotations

import fnmatch
import glob
import os
from typing import Any

from gpuctk.cdi.errors import escape
from gpuctk.discover import devices as D
from gpuctk.discover.csvfiles import SkippableCSVError, load_csv
from gpuctk.errors import GpuctkError
from gpuctk.generate.context import GenerateContext, device_names
from gpuctk.generate.driver import _so_links, mount
from gpuctk.generate.hooks import ldcache_hook, make_hook, symlinks_hook
from gpuctk.generate.options import CSV_BASE_FILES, CSV_DEFAULT_DIR


def _ignored(path: str, patterns: list[str]) -> bool:
    for pat in patterns:
        if pat.startswith("**/"):
            if fnmatch.fnmatchcase(os.path.basename(path), pat[3:]):
                return True
        elif fnmatch.fnmatchcase(path, pat):
            return True
    return False


def csv_files(ctx: GenerateContext) -> list[str]:
    """``--csv.file`` or the base files under the default mount-spec dir of the driver root."""
    return ctx.opts.csv_files or [ctx.root.host(f"{CSV_DEFAULT_DIR}/{f}") for f in CSV_BASE_FILES]


def csv_entries(ctx: GenerateContext) -> dict[str, list[str]]:
    files = csv_files(ctx)
    by_type: dict[str, list[str]] = {"dev": [], "lib": [], "sym": [], "dir": []}
    for f in files:
        try:
            entries = load_csv(f)
        except SkippableCSVError as exc:  # as upstream: warn and skip (hostile content is an error)
            if ctx.opts.csv_files or os.path.lexists(f):
                ctx.warnings.append(f"{exc}; skipped")
            continue
        for kind, path in entries:
            if path not in by_type[kind]:
                by_type[kind].append(path)
    by_type["sym"] = [p for p in by_type["sym"] if not _ignored(p, ctx.opts.csv_ignore_patterns)]
    return by_type


def _chain_links(ctx: GenerateContext, path: str) -> tuple[list[str], str | None]:
    """``--link`` args for every symlink in the chain of ``path`` and the final target."""
    links = []
    cur = path
    for _ in range(40):
        host = ctx.root.host(cur)
        try:
            target = os.readlink(host)
        except OSError:
            break
        links.append(f"{target}::{cur}")
        cur = os.path.normpath(os.path.join(os.path.dirname(cur), target))
    final = ctx.root.resolve(ctx.root.host(path))
    return links, final


def csv_edits(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    opts = ctx.opts
    files = csv_files(ctx)
    entries = csv_entries(ctx)
    if any(":" in i for i in opts.device_ids):
        raise GpuctkError("--device-id: MIG devices are not supported in csv mode")
    for i in opts.device_ids:
        if i not in ("all", "0", "none"):
            raise GpuctkError(f"--device-id {i}: csv mode has a single device (use 0 or all)")
    dev_paths: list[str] = []
    for pat in entries["dev"]:
        pat = pat if pat.startswith("/") else "/dev/" + pat
        hits = D.glob_nodes(ctx.dev_root, [pat])
        if not hits:
            ctx.warnings.append(f"{D.host_path(ctx.dev_root, pat)}: CSV device node not found; skipped")
        dev_paths += [h for h in hits if h not in dev_paths]
    devices: list[dict[str, Any]] = []
    if "none" not in opts.device_ids and not dev_paths:
        # upstream fails here too (exit 1): a spec without devices is invalid
        raise GpuctkError(
            f"csv mode: no device nodes found from the CSV files ({escape(', '.join(files))}) "
            f"under {escape(ctx.dev_root)}"
            " (is this a Tegra/Jetson node?)"
        )
    if "none" not in opts.device_ids and dev_paths:
        inv = ctx.inventory()
        uuid = inv["gpus"][0]["uuid"] if inv["gpus"] else None
        edits = ctx.edits_for_nodes(dev_paths)
        for name in device_names("gpu", "0", uuid, opts.device_name_strategies, ctx.warnings):
            devices.append({"name": name, "containerEdits": edits})

    mounts: list[dict[str, Any]] = []
    links: list[str] = []
    for d in entries["dir"]:
        for hit in sorted(glob.glob(ctx.root.host(d))):
            if os.path.isdir(hit):
                mounts.append(mount(ctx.root, hit))
    for lib in entries["lib"]:
        resolved = ctx.root.resolve(ctx.root.host(lib))
        if not resolved or not os.path.isfile(resolved):
            ctx.warnings.append(f"{ctx.root.host(lib)}: CSV library not found; skipped")
            continue
        mounts.append(mount(ctx.root, resolved))
        links += _so_links(ctx.root, resolved)
    for sym in entries["sym"]:
        chain, final = _chain_links(ctx, sym)
        if final and os.path.exists(final):
            mounts.append(mount(ctx.root, final))
        links += chain
    release = ctx.root.host("/etc/nv_tegra_release")
    if os.path.isfile(release):
        mounts.append(mount(ctx.root, release))
    folders = []
    for m in mounts:
        base = os.path.basename(m["containerPath"])
        if base.startswith("lib") and ".so" in base:
            folders.append(os.path.dirname(m["containerPath"]))
    hooks = [symlinks_hook(opts, ctx.hook_path, links)]
    inv = ctx.inventory()
    if inv.get("cuda_version") and not str(inv.get("source", "")).startswith("procfs"):
        args = [f"--host-cuda-version={inv['cuda_version']}"]
        if any("Orin (nvgpu)" in (g.get("name") or "") for g in inv["gpus"]):
            args.append("--cuda-compat-container-root=/usr/local/cuda/compat_orin")
        hooks.append(make_hook(opts, ctx.hook_path, "enable-cuda-compat", args))
    hooks.append(ldcache_hook(opts, ctx.hook_path, folders))
    return devices, {"mounts": mounts, "hooks": [h for h in hooks if h]}
