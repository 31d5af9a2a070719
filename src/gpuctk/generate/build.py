"""Assemble a CDI spec for one mode (NVIDIA/nvidia-container-toolkit ``pkg/nvcdi/lib*.go``,
``pkg/nvcdi/spec/*``, ``pkg/nvcdi/transform/*``)."""

from __future__ import annotations

import os
import re
from typing import Any

from gpuctk.cdi.version import minimum_version_of
from gpuctk.discover import devices as D
from gpuctk.discover.procfs import nvidia_major, parse_mig_minors, parse_proc_devices, read_text
from gpuctk.errors import GpuctkError, UsageError
from gpuctk.generate import transform as T
from gpuctk.generate.context import GenerateContext, device_names
from gpuctk.generate.driver import RO_OPTIONS, discover_driver
from gpuctk.generate.hooks import (
    combine_hooks,
    is_own_hook,
    ldcache_hook,
    make_hook,
    merge_symlink_hooks,
    symlinks_hook,
)
from gpuctk.generate.options import FEATURE_FLAGS, HOOK_NAMES, MODES, NAME_STRATEGIES, GenerateOptions

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.:\-]*[A-Za-z0-9])?$")
_VENDOR_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?$")
GATED = {
    "gds": ["/dev/nvidia-fs*"],
    "mofed": ["/dev/infiniband/uverbs*", "/dev/infiniband/rdma_cm"],
    "gdrcopy": ["/dev/gdrdrv"],
    "nvswitch": ["/dev/nvidia-nvswitchctl", "/dev/nvidia-nvswitch*"],
}
MANAGEMENT_GLOBS = [
    "/dev/nvidia*",
    "/dev/nvidia-caps/nvidia-cap*",
    "/dev/nvidia-modeset",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-uvm",
    "/dev/nvidiactl",
    "/dev/nvidia-caps-imex-channels/channel*",
]


def _check_options(opts: GenerateOptions) -> None:
    if opts.mode not in MODES:
        raise UsageError(f"--mode: unknown mode {opts.mode!r} (choose from {', '.join(MODES)})")
    for s in opts.device_name_strategies:
        if s not in NAME_STRATEGIES:
            raise UsageError(
                f"--device-name-strategy: unknown strategy {s!r} (choose from {', '.join(NAME_STRATEGIES)})"
            )
    for h in [*opts.disabled_hooks, *opts.enabled_hooks]:
        if h not in (*HOOK_NAMES, "all"):
            raise UsageError(
                f"--disable-hook/--enable-hook: unknown hook {h!r} (choose from {', '.join(HOOK_NAMES)}, all)"
            )
    if "all" in opts.enabled_hooks:
        raise UsageError("--enable-hook: 'all' cannot be enabled")
    for f in opts.feature_flags:
        if f not in FEATURE_FLAGS:
            raise UsageError(
                f"--feature-flag: unknown feature flag {f!r} (choose from {', '.join(FEATURE_FLAGS)})"
            )
    for label, value in (("--vendor", opts.vendor), ("--class", opts.device_class)):
        if value is not None and not _VENDOR_RE.fullmatch(value):
            raise UsageError(f"{label}: invalid value {value!r}")


def resolve_mode(ctx: GenerateContext) -> str:
    """auto: WSL if dxcore is present, Tegra if tegra files and no GPUs from NVML/procfs, else nvml."""
    root = ctx.root
    if root.locate_libraries("libdxcore.so"):
        return "wsl"
    tegra = os.path.isfile(root.host("/etc/nv_tegra_release"))
    family = (read_text(ctx.dev_root, "/sys/devices/soc0/family") or "").strip().lower()
    if tegra or family.startswith("tegra"):
        inv = ctx.inventory()
        if not inv["gpus"] or any("(nvgpu)" in (g.get("name") or "") for g in inv["gpus"]):
            return "csv"
    return "nvml"


def _select(
    inv: dict[str, Any], ids: list[str]
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """GPUs (non-MIG) and (gpu, mig) pairs selected by device ids."""
    full = [g for g in inv["gpus"] if not g["mig_enabled"]]
    migs = [(g, m) for g in inv["gpus"] if g["mig_enabled"] for m in g["mig_devices"]]
    if "none" in ids:
        return [], []
    if "all" in ids:
        return full, migs
    sel_full: list[dict[str, Any]] = []
    sel_mig: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in ids:
        hit = False
        for g in inv["gpus"]:
            if i in (str(g["index"]), g["uuid"]):
                hit = True
                if g["mig_enabled"]:
                    sel_mig += [(g, m) for m in g["mig_devices"] if (g, m) not in sel_mig]
                elif g not in sel_full:
                    sel_full.append(g)
            for m in g["mig_devices"]:
                if g["mig_enabled"] and i in (f"{g['index']}:{m['index']}", m["uuid"]):
                    hit = True
                    if (g, m) not in sel_mig:
                        sel_mig.append((g, m))
        if not hit:
            raise GpuctkError(
                f"--device-id {i}: no such GPU or MIG device (known: index, UUID, <gpu>:<mig>, all, none)"
            )
    return sel_full, sel_mig


def _gpu_devices(ctx: GenerateContext) -> list[dict[str, Any]]:
    inv = ctx.inventory()
    opts = ctx.opts
    full, migs = _select(inv, opts.device_ids)
    out = []
    mig_minors: dict[str, int] | None = None
    for g in full:
        paths = [f"/dev/nvidia{g['minor']}", *D.drm_nodes(ctx.dev_root, g["pci_bus_id"])]
        edits = ctx.edits_for_nodes(paths)
        hook = symlinks_hook(opts, ctx.hook_path, D.by_path_links(ctx.dev_root, g["pci_bus_id"], paths))
        if hook:
            edits["hooks"] = [hook]
        for name in device_names(
            "gpu", str(g["index"]), g["uuid"], opts.device_name_strategies, ctx.warnings
        ):
            out.append({"name": name, "containerEdits": edits})
    for g, m in migs:
        if mig_minors is None:
            mig_minors = parse_mig_minors(
                read_text(ctx.dev_root, "/proc/driver/nvidia-caps/mig-minors") or ""
            )
        gi_key = f"gpu{g['minor']}/gi{m['gpu_instance_id']}/access"
        ci_key = f"gpu{g['minor']}/gi{m['gpu_instance_id']}/ci{m['compute_instance_id']}/access"
        if gi_key not in mig_minors or ci_key not in mig_minors:
            raise GpuctkError(
                f"{ctx.dev_root}/proc/driver/nvidia-caps/mig-minors: no entry for {gi_key} / {ci_key}"
            )
        paths = [
            f"/dev/nvidia{g['minor']}",
            f"/dev/nvidia-caps/nvidia-cap{mig_minors[gi_key]}",
            f"/dev/nvidia-caps/nvidia-cap{mig_minors[ci_key]}",
        ]
        edits = ctx.edits_for_nodes(paths)
        if m.get("gfx"):
            drm = D.drm_nodes(ctx.dev_root, g["pci_bus_id"])
            edits = ctx.edits_for_nodes(paths + drm)
            hook = symlinks_hook(opts, ctx.hook_path, D.by_path_links(ctx.dev_root, g["pci_bus_id"], drm))
            if hook:
                edits["hooks"] = [hook]
        for name in device_names(
            "mig", f"{g['index']}:{m['index']}", m["uuid"], opts.device_name_strategies, ctx.warnings
        ):
            out.append({"name": name, "containerEdits": edits})
    return out


def _driver_common(ctx: GenerateContext, *, graphics: bool, management: bool) -> dict[str, Any]:
    opts = ctx.opts
    version = ctx.driver_version()
    drv = discover_driver(
        ctx.root,
        version,
        graphics=graphics,
        ipc="disable-ipc-discoverer" not in opts.feature_flags,
        explicit_libs="enable-explicit-driver-libraries" in opts.feature_flags,
    )
    env = []
    if drv.lib_dirs:
        env.append("NVIDIA_CTK_LIBCUDA_DIR=" + ":".join(drv.lib_dirs))
    hooks = [
        symlinks_hook(opts, ctx.hook_path, drv.graphics_links),
        symlinks_hook(opts, ctx.hook_path, drv.lib_links),
        make_hook(opts, ctx.hook_path, "enable-cuda-compat", [f"--host-driver-version={version}"]),
        ldcache_hook(opts, ctx.hook_path, drv.ldcache_folders),
    ]
    if not management:
        hooks.append(make_hook(opts, ctx.hook_path, "disable-device-node-modification", []))
        hooks.append(make_hook(opts, ctx.hook_path, "update-application-profile", []))
    edits: dict[str, Any] = {"env": env, "mounts": drv.mounts, "hooks": [h for h in hooks if h]}
    return edits


def _chmod_hook(
    ctx: GenerateContext, devices: list[dict[str, Any]], common: dict[str, Any]
) -> dict[str, Any] | None:
    dirs = set()
    for edits in [common, *[d["containerEdits"] for d in devices]]:
        for n in edits.get("deviceNodes", []):
            parent = os.path.dirname(n["path"])
            if parent != "/dev":
                dirs.add(parent)
    if not dirs:
        return None
    args = ["--mode", "755"]
    for d in sorted(dirs):
        args += ["--path", d]
    return make_hook(ctx.opts, ctx.hook_path, "chmod", args)


def _nvml(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ctx.driver_version()  # no driver at all is the clearer error
    devices = _gpu_devices(ctx)
    if not ctx.inventory()["gpus"] and "none" not in ctx.opts.device_ids:
        raise GpuctkError(
            f"{ctx.dev_root}: no NVIDIA GPUs found (inventory {ctx.inventory()['source']}); "
            "use --mode management for a driver-only spec"
        )
    common = _driver_common(ctx, graphics=True, management=False)
    control = D.existing_nodes(ctx.dev_root, D.CONTROL_NODES)
    node_edits = ctx.edits_for_nodes(control)
    common["deviceNodes"] = node_edits["deviceNodes"]
    if node_edits.get("additionalGids"):
        common["additionalGids"] = node_edits["additionalGids"]
    _check_majors(ctx, devices, common)
    return devices, common


def _check_majors(ctx: GenerateContext, devices: list[dict[str, Any]], common: dict[str, Any]) -> None:
    """Warn when a node's major disagrees with /proc/devices (a stale node from another driver)."""
    text = read_text(ctx.dev_root, "/proc/devices")
    if not text:
        return
    majors = parse_proc_devices(text)
    expected = {
        "nvidia": nvidia_major(majors),
        "nvidia-uvm": majors.get("nvidia-uvm"),
        "nvidia-caps": majors.get("nvidia-caps"),
    }
    seen = set()
    for edits in [common, *[d["containerEdits"] for d in devices]]:
        for n in edits.get("deviceNodes", []):
            base = os.path.basename(n["path"])
            key = (
                "nvidia-uvm"
                if base.startswith("nvidia-uvm")
                else "nvidia-caps"
                if base.startswith("nvidia-cap")
                else "nvidia"
                if re.fullmatch(r"nvidia(\d+|ctl|-modeset)", base)
                else None
            )
            want = expected.get(key) if key else None
            if want is not None and "major" in n and n["major"] != want and n["path"] not in seen:
                seen.add(n["path"])
                ctx.warnings.append(
                    f"{n.get('hostPath', n['path'])}: major {n['major']} but /proc/devices "
                    f"lists {key} as {want}"
                )


def _management(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    paths = [
        p
        for p in D.glob_nodes(ctx.dev_root, MANAGEMENT_GLOBS)
        if not os.path.basename(p).startswith(("nvidia-fs", "nvidia-nvswitch", "nvidia-nvlink"))
    ]
    if not paths:
        raise GpuctkError(f"{ctx.dev_root}/dev: no NVIDIA device nodes found for the management spec")
    devices = [{"name": "all", "containerEdits": ctx.edits_for_nodes(paths)}]
    return devices, _driver_common(ctx, graphics=False, management=True)


def _gated(ctx: GenerateContext, mode: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    paths = D.glob_nodes(ctx.dev_root, GATED[mode])
    if not paths:
        raise GpuctkError(f"{ctx.dev_root}: no device nodes for mode {mode} ({', '.join(GATED[mode])})")
    edits = ctx.edits_for_nodes(paths)
    if mode == "gds":
        mounts = []
        for p in ("/run/udev", "/etc/cufile.json"):
            hp = ctx.root.host(p)
            if os.path.exists(hp):
                mounts.append({"hostPath": hp, "containerPath": p, "options": list(RO_OPTIONS)})
        if mounts:
            edits["mounts"] = mounts
    return [{"name": "all", "containerEdits": edits}], {}


def _imex(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ids = ctx.opts.device_ids
    if "all" in ids:
        chans = D.glob_nodes(ctx.dev_root, ["/dev/nvidia-caps-imex-channels/channel*"])
        numbers = sorted(int(p.rsplit("channel", 1)[1]) for p in chans if p.rsplit("channel", 1)[1].isdigit())
    else:
        numbers = []
        for i in ids:
            s = i[len("channel") :] if i.startswith("channel") else i
            if not s.isdigit() or int(s) > 2**20 - 1:
                raise GpuctkError(f"--device-id {i}: invalid IMEX channel (N or channelN, N <= {2**20 - 1})")
            numbers.append(int(s))
    devices = []
    for n in numbers:
        path = f"/dev/nvidia-caps-imex-channels/channel{n}"
        if D.stat_device(D.host_path(ctx.dev_root, path)) is None:
            raise GpuctkError(f"{D.host_path(ctx.dev_root, path)}: IMEX channel node does not exist")
        devices.append({"name": str(n), "containerEdits": ctx.edits_for_nodes([path])})
    if not devices:
        raise GpuctkError(f"{ctx.dev_root}: no IMEX channels found")
    return devices, {}


def _wsl(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from gpuctk.generate.wsl import wsl_edits

    return wsl_edits(ctx)


def _csv(ctx: GenerateContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from gpuctk.generate.csvmode import csv_edits

    return csv_edits(ctx)


def _one_process_hooks(spec: dict[str, Any]) -> None:
    """For gpuctk's own hook executable (generate.hooks.is_own_hook): the common edits' steps
    as ONE ``gpuctk-hook run-steps`` hook (same steps, same order), and each device's
    create-symlinks hooks as one (the ``all`` device unites every GPU's by-path links).
    Device hooks stay with their device, so a container that requests some devices runs
    exactly those devices' links, as CDI says (docs/hooks.md, "One process")."""
    common = spec.get("containerEdits") or {}
    if common.get("hooks"):
        common["hooks"] = combine_hooks(common["hooks"])
    for dev in spec["devices"]:
        edits = dev.get("containerEdits") or {}
        if edits.get("hooks"):
            edits["hooks"] = merge_symlink_hooks(edits["hooks"])


def build_spec(opts: GenerateOptions) -> tuple[dict[str, Any], list[str]]:
    _check_options(opts)
    ctx = GenerateContext(opts)
    mode = opts.mode
    if mode == "auto":
        mode = resolve_mode(ctx)
    vendor = opts.vendor or ("management.nvidia.com" if mode == "management" else "nvidia.com")
    cls = opts.device_class or {"imex": "imex-channel", **{m: m for m in GATED}}.get(mode, "gpu")
    if mode == "nvml":
        devices, common = _nvml(ctx)
    elif mode == "management":
        devices, common = _management(ctx)
    elif mode in GATED:
        devices, common = _gated(ctx, mode)
    elif mode == "imex":
        devices, common = _imex(ctx)
    elif mode == "wsl":
        devices, common = _wsl(ctx)
    else:
        devices, common = _csv(ctx)
    chmod = _chmod_hook(ctx, devices, common)
    if chmod:
        common.setdefault("hooks", []).append(chmod)
    common.setdefault("env", []).append("NVIDIA_VISIBLE_DEVICES=void")
    spec: dict[str, Any] = {
        "cdiVersion": "0.3.0",
        "kind": f"{vendor}/{cls}",
        "devices": devices,
        "containerEdits": common,
    }
    names = [d["name"] for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GpuctkError(
            f"inventory {ctx.inventory()['source']}: duplicate device names {', '.join(dupes)} "
            "(two GPUs with the same index or UUID?)"
        )
    bad = [n for n in names if not _NAME_RE.fullmatch(n)]
    if bad:
        raise GpuctkError(f"inventory {ctx.inventory()['source']}: invalid CDI device names {', '.join(bad)}")
    spec = T.simplify(spec)
    if not opts.no_all_device and "none" not in opts.device_ids:
        merged = T.merged_device(spec["devices"])
        if merged:
            spec["devices"].append(merged)
            spec = T.simplify(spec)
    if not spec["devices"]:
        if "none" not in opts.device_ids:  # a spec without devices is invalid: never exit 0 with one
            raise GpuctkError(
                f"mode {mode}: no devices found (inventory {ctx.inventory()['source']}); nothing to generate"
            )
        ctx.warnings.append("the spec has no devices")
    if is_own_hook(ctx.hook_path):
        _one_process_hooks(spec)
    spec["cdiVersion"] = minimum_version_of(spec)
    return spec, list(dict.fromkeys(ctx.warnings))
