"""The ``nvidia-container-cli`` argv of the legacy prestart hook (upstream: NVIDIA/nvidia-container-toolkit
``cmd/nvidia-container-runtime-hook/{main,hook_config,container_config,capabilities}.go``), as a pure
function of (config dict, OCI spec dict, state pid, rootfs) plus two host lookups that
tests replace."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gpuctk.errors import GpuctkError

CAPABILITY_ORDER = ("compute", "compat32", "graphics", "utility", "video", "display", "ngx")
DEFAULT_CAPS = ("utility", "compute")
CDI_HINT = (
    "switch to CDI mode: `gpuctk cdi generate --output /etc/cdi/nvidia.yaml` and set "
    'nvidia-container-runtime.mode = "cdi" (`gpuctk config --set nvidia-container-runtime.mode=cdi --in-place`)'
)
DIRECT_INVOCATION = (
    "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker --gpus flag) "
    "is not supported in mode {mode!r}; use the NVIDIA Container Runtime (or set "
    "nvidia-container-runtime-hook.skip-mode-detection = true)"
)


class LegacyHookError(GpuctkError):
    pass


def _split(v: str) -> list[str]:
    return [t.strip() for t in v.split(",") if t.strip()]


def supported_capabilities(cfg: dict[str, Any]) -> list[str]:
    value = str(cfg.get("supported-driver-capabilities") or "")
    caps = _split(value)
    if "all" in caps:
        return list(CAPABILITY_ORDER)
    bad = [c for c in caps if c not in CAPABILITY_ORDER]
    if bad:
        raise LegacyHookError(f"config supported-driver-capabilities: unknown capability {bad[0]!r}")
    return caps


def capabilities(cfg: dict[str, Any], env: dict[str, str], legacy_image: bool) -> list[str]:
    """The driver capabilities to pass, in the CLI's flag order."""
    supported = supported_capabilities(cfg)
    if "NVIDIA_DRIVER_CAPABILITIES" not in env:
        wanted = list(supported) if legacy_image else [c for c in DEFAULT_CAPS if c in supported]
    else:
        req = _split(env["NVIDIA_DRIVER_CAPABILITIES"])
        if not req:
            wanted = [c for c in DEFAULT_CAPS if c in supported]
        elif "all" in req:
            wanted = list(supported)
        else:
            bad = [c for c in req if c not in supported]
            if bad:
                raise LegacyHookError(
                    f"NVIDIA_DRIVER_CAPABILITIES: unsupported capability {bad[0]!r} "
                    f"(supported: {','.join(supported)})"
                )
            wanted = req
    return [c for c in CAPABILITY_ORDER if c in wanted]


def cuda_compat_flag(cfg: dict[str, Any]) -> str | None:
    features = cfg.get("features") or {}
    if not features.get("allow-cuda-compat-libs-from-container"):
        return "--cuda-compat-mode=disabled"
    mode = (((cfg.get("nvidia-container-runtime") or {}).get("modes") or {}).get("legacy") or {}).get(
        "cuda-compat-mode"
    )
    if mode in ("ldconfig", "mount"):
        return f"--cuda-compat-mode={mode}"
    if mode in ("hook", "disabled"):
        return "--cuda-compat-mode=disabled"
    return None


def ldconfig_flag(value: str, exists: Callable[[str], bool]) -> str:
    if value == "@/sbin/ldconfig" and exists("/sbin/ldconfig.real"):
        value = "@/sbin/ldconfig.real"
    return f"--ldconfig={value}"


def find_cli(cfg: dict[str, Any], path_env: str, is_exe: Callable[[str], bool]) -> str | None:
    """``nvidia-container-cli.path``, else a PATH lookup with the driver root's dirs first."""
    cli_cfg = cfg.get("nvidia-container-cli") or {}
    configured = str(cli_cfg.get("path") or "")
    if configured:
        return configured if is_exe(configured) else None
    root = str(cli_cfg.get("root") or "")
    dirs = []
    if root:
        dirs = [
            os.path.join(root, d.lstrip("/"))
            for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
        ]
    for d in [*dirs, *path_env.split(":")]:
        if d:
            cand = os.path.join(d, "nvidia-container-cli")
            if is_exe(cand):
                return cand
    return None


def resolve_mode_ok(cfg: dict[str, Any], devices: list[str]) -> str | None:
    """None when the hook may act, else the mode that forbids it."""
    hook_cfg = cfg.get("nvidia-container-runtime-hook") or {}
    if hook_cfg.get("skip-mode-detection"):
        return None
    mode = str((cfg.get("nvidia-container-runtime") or {}).get("mode") or "auto")
    if mode == "legacy":
        return None
    if mode == "auto":
        from gpuctk.request import is_qualified_cdi_name

        if devices and all(is_qualified_cdi_name(d) for d in devices):
            return "cdi"
        return None
    return mode


def build_argv(
    cfg: dict[str, Any],
    spec: dict[str, Any],
    *,
    cli_path: str,
    rootfs: str,
    pid: int | None,
    hook_debug: bool = False,
    exists: Callable[[str], bool] = os.path.exists,
) -> list[str] | None:
    """The full argv, or None when the container requests no GPU (not a GPU container)."""
    from gpuctk.request import ContainerRequest

    image = ContainerRequest.from_spec(spec, cfg, annotation_prefixes=())
    devices = image.visible_devices()
    if not devices:
        return None
    bad_mode = resolve_mode_ok(cfg, devices)
    if bad_mode is not None:
        raise LegacyHookError(DIRECT_INVOCATION.format(mode=bad_mode))
    cli = cfg.get("nvidia-container-cli") or {}
    argv = [cli_path]
    if cli.get("root"):
        argv.append(f"--root={cli['root']}")
    if cli.get("load-kmods"):
        argv.append("--load-kmods")
    features = cfg.get("features") or {}
    if features.get("disable-imex-channel-creation"):
        argv.append("--no-create-imex-channels")
    if cli.get("no-pivot"):
        argv.append("--no-pivot")
    if hook_debug:
        argv.append("--debug=/dev/stderr")
    elif cli.get("debug"):
        argv.append(f"--debug={cli['debug']}")
    if cli.get("ldcache"):
        argv.append(f"--ldcache={cli['ldcache']}")
    if cli.get("user"):
        argv.append(f"--user={cli['user']}")
    argv.append("configure")
    compat = cuda_compat_flag(cfg)
    if compat:
        argv.append(compat)
    if cli.get("ldconfig"):
        argv.append(ldconfig_flag(str(cli["ldconfig"]), exists))
    if cli.get("no-cgroups"):
        argv.append("--no-cgroups")
    if devices != ["none"]:  # "none": the driver without any GPU
        argv.append("--device=" + ",".join(devices))
    mig_config, mig_monitor = image.mig_config_devices(), image.mig_monitor_devices()
    if (mig_config or mig_monitor) and not image.is_privileged():
        which = "MIG_CONFIG_DEVICES" if mig_config else "MIG_MONITOR_DEVICES"
        raise LegacyHookError(f"cannot set {which} in non privileged container")
    if mig_config:
        argv.append("--mig-config=" + ",".join(mig_config))
    if mig_monitor:
        argv.append("--mig-monitor=" + ",".join(mig_monitor))
    imex = image.imex_channels()
    if imex:
        argv.append("--imex-channel=" + ",".join(imex))
    argv += [f"--{c}" for c in capabilities(cfg, image.env, image.is_legacy_cuda())]
    if not cfg.get("disable-require"):
        argv += [f"--require={r}" for r in image.requirements()]
    if pid is not None:
        argv.append(f"--pid={pid}")
    argv.append(rootfs)
    return argv


def cli_env(base: dict[str, str], cfg: dict[str, Any]) -> dict[str, str]:
    """The hook's environment plus ``nvidia-container-cli.environment``; loader variables
    are dropped whoever set them."""
    env = {k: v for k, v in base.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")}
    for item in (cfg.get("nvidia-container-cli") or {}).get("environment") or []:
        k, sep, v = str(item).partition("=")
        if sep and k not in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"):
            env[k] = v
    return env
