"""Facts about how runsc (gVisor) + nvproxy reads an OCI spec (google/gvisor
`runsc/specutils/nvidia.go`, `pkg/sentry/devices/nvproxy/`).

Small pure helpers shared by the checker (``check``) and the producers (``ready``): which device
nodes nvproxy backs, how runsc resolves ``NVIDIA_VISIBLE_DEVICES``, which hooks it recognises, and
the dated list of supported drivers. Stdlib-only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

NVD = "NVIDIA_VISIBLE_DEVICES"
NVCAPS = "NVIDIA_DRIVER_CAPABILITIES"

# runsc recognises hooks by the *suffix* of the path, including the slash (A.1).
CDI_HOOK = "nvidia-cdi-hook"
LEGACY_HOOK = "nvidia-container-runtime-hook"
# Names the toolkit/gpuctk treat as the legacy hook but runsc does not.
LEGACY_HOOK_ALIASES = ("nvidia-container-toolkit", "gpuctk-runtime-hook")
# Executables that run the toolkit's CDI hooks, by basename.
TOOLKIT_HOOK_BINARIES = (CDI_HOOK, "nvidia-ctk", "gpuctk-hook", "gpuctk")
# createContainer hooks reported working inside the gofer (#13034, #13283).
HOOKS_VERIFIED_IN_GOFER = ("create-symlinks", "update-ldcache", "enable-cuda-compat")
DISABLE_NODE_MOD = "disable-device-node-modification"

NVPROXY_ANNOTATION = "dev.gvisor.internal.nvproxy"
ROOTFS_TYPE_ANNOTATION = "dev.gvisor.spec.rootfs.type"
K8S_CONTAINER_TYPE_ANNOTATIONS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")

# NV_MINOR_DEVICE_NUMBER_REGULAR_MAX: the highest /dev/nvidiaN nvproxy registers.
MAX_GPU_MINOR = 247
_GPU_NODE = re.compile(r"^/dev/nvidia(\d+)$")
# Device paths that belong to a GPU stack (others, e.g. /dev/fuse, are not nvproxy's business).
_GPU_RELATED = re.compile(r"^/dev/(nvidia|dri/|nvhost|nvmap|nvgpu|nvsci|host1x|gdrdrv|tegra)")
_TEGRA_NODE = re.compile(r"^/dev/(nvhost|nvmap|nvgpu|nvsci|host1x|tegra)")
MIG_CAP_PREFIX = "/dev/nvidia-caps/"

# Driver capabilities: what the toolkit knows, and what runsc's "all" expands to (A.2).
KNOWN_CAPABILITIES = ("compute", "compat32", "graphics", "utility", "video", "display", "ngx")
RUNSC_ALL_CAPABILITIES = ("compute", "utility", "graphics", "video")
RUNSC_PRIVILEGED_CAPABILITIES = ("fabric-imex-mgmt", "profiling", "rdma")
RUNSC_DEFAULT_ALLOWED = ("compute", "utility")

_SOCKET_PATHS = ("nvidia-persistenced/socket", "nvidia-fabricmanager/socket")


# ---------------------------------------------------------------- spec access


def as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def hooks(spec: dict, stage: str) -> list[dict]:
    """The hooks of a stage; a ``gpuctk-hook run-steps`` hook counts as its steps, one each."""
    from gpuctk.generate.hooks import expand_hooks

    return expand_hooks([h for h in as_list(as_dict(spec.get("hooks")).get(stage)) if isinstance(h, dict)])


def devices(spec: dict) -> list[dict]:
    return [d for d in as_list(as_dict(spec.get("linux")).get("devices")) if isinstance(d, dict)]


def env_entries(spec: dict) -> list[object] | None:
    """``process.env`` as given (may hold non-strings); None when there is no process."""
    process = spec.get("process")
    if not isinstance(process, dict):
        return None
    return as_list(process.get("env"))


def basename(path: object) -> str:
    return os.path.basename(path) if isinstance(path, str) else ""


# ---------------------------------------------------------------- environment


def malformed_env(entries: Iterable[object]) -> list[str]:
    """Entries that are not ``NAME=VALUE`` (C6)."""
    bad = []
    for e in entries:
        if not isinstance(e, str) or "=" not in e or e.startswith("="):
            bad.append(repr(e) if not isinstance(e, str) else e)
    return bad


def env_values(entries: Iterable[object], name: str) -> list[str]:
    prefix = name + "="
    return [e[len(prefix) :] for e in entries if isinstance(e, str) and e.startswith(prefix)]


def runsc_env_lookup(entries: list[object], name: str) -> str | None:
    """runsc's ``EnvVar``: last occurrence wins; ANY malformed entry makes every variable unset."""
    if malformed_env(entries):
        return None
    values = env_values(entries, name)
    return values[-1] if values else None


def toolkit_env_lookup(entries: list[object], name: str) -> str | None:
    """What the toolkit/gpuctk sees: last well-formed occurrence wins."""
    values = env_values(entries, name)
    return values[-1] if values else None


def cdi_effective_visible_devices(entries: list[object]) -> str | None:
    """runsc's CDI-kind rule (A.1): last entry, or the second-to-last when the last is ``void``."""
    values = env_values(entries, NVD)
    if not values:
        return None
    if len(values) >= 2 and values[-1] == "void":
        return values[-2]
    return values[-1]


def is_request(value: str | None) -> bool:
    """runsc counts a request when the value is non-empty and not ``void`` (``none`` counts)."""
    return value is not None and value != "" and value != "void"


def is_legacy_cuda_image(entries: list[object]) -> bool:
    return (
        toolkit_env_lookup(entries, "CUDA_VERSION") is not None
        and toolkit_env_lookup(entries, "NVIDIA_REQUIRE_CUDA") is None
    )


# ---------------------------------------------------------------- hooks


def is_runsc_cdi_hook(hook: dict) -> bool:
    path = hook.get("path")
    return isinstance(path, str) and path.endswith("/" + CDI_HOOK)


def is_runsc_legacy_hook(hook: dict) -> bool:
    path = hook.get("path")
    return isinstance(path, str) and path.endswith("/" + LEGACY_HOOK)


def is_legacy_hook_alias(hook: dict) -> bool:
    return basename(hook.get("path")) in LEGACY_HOOK_ALIASES


def toolkit_hook_name(hook: dict) -> tuple[str, list[str]] | None:
    """(hook name, remaining args) for a toolkit/gpuctk CDI hook, else None.

    Shapes: ``[nvidia-cdi-hook, NAME, …]``, ``[nvidia-ctk, hook, NAME, …]``, ``[gpuctk-hook, NAME, …]``,
    ``[gpuctk, hook, NAME, …]``.
    """
    if basename(hook.get("path")) not in TOOLKIT_HOOK_BINARIES:
        return None
    args = [a for a in as_list(hook.get("args")) if isinstance(a, str)]
    rest = args[1:]
    if rest and rest[0] == "hook":
        rest = rest[1:]
    if not rest:
        return None
    return rest[0], rest[1:]


# ---------------------------------------------------------------- device nodes


def is_gpu_related(path: str) -> bool:
    return bool(_GPU_RELATED.match(path))


def is_backed_by_nvproxy(path: str) -> bool:
    """Only /dev/nvidiactl, /dev/nvidia-uvm and /dev/nvidiaN (N ≤ 247) are really proxied (A.5)."""
    if path in ("/dev/nvidiactl", "/dev/nvidia-uvm"):
        return True
    m = _GPU_NODE.match(path)
    return m is not None and int(m.group(1)) <= MAX_GPU_MINOR


def is_mig_cap(path: str) -> bool:
    return path.startswith(MIG_CAP_PREFIX)


def is_tegra_node(path: str) -> bool:
    return bool(_TEGRA_NODE.match(path))


# ---------------------------------------------------------------- mounts


def looks_like_socket(path: object) -> bool:
    """Name-based guess: the toolkit's IPC sockets, ``…/socket``, ``*.sock``."""
    if not isinstance(path, str) or not path:
        return False
    name = os.path.basename(path.rstrip("/"))
    return name == "socket" or name.endswith((".sock", ".socket")) or any(p in path for p in _SOCKET_PATHS)


def is_nvidia_ipc(path: object) -> bool:
    """The toolkit's IPC sockets (persistenced, fabricmanager): safe for gpuctk to drop."""
    return isinstance(path, str) and any(p in path for p in _SOCKET_PATHS)


def socket_mounts(
    mounts: Iterable[dict],
    is_socket: Callable[[str], bool] | None = None,
    *,
    src_key: str = "source",
    dst_key: str = "destination",
) -> list[dict]:
    found = []
    for m in mounts:
        src, dst = m.get(src_key), m.get(dst_key)
        if (
            looks_like_socket(src)
            or looks_like_socket(dst)
            or (is_socket is not None and isinstance(src, str) and is_socket(src))
        ):
            found.append(m)
    return found


def mounts_libcuda(mounts: Iterable[dict], dst_key: str = "destination") -> bool:
    return any("libcuda.so" in basename(m.get(dst_key)) for m in mounts)


# ---------------------------------------------------------------- capabilities and flags


def go_parse_bool(value: object) -> bool | None:
    """``strconv.ParseBool`` as runsc uses it; None = unparsable."""
    if isinstance(value, bool):
        return value
    s = str(value)
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def split_caps(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


def allowed_capabilities(flags: dict) -> tuple[str, ...]:
    raw = flags.get("nvproxy-allowed-driver-capabilities")
    if raw is None or str(raw).strip() == "":
        return RUNSC_DEFAULT_ALLOWED
    caps: list[str] = []
    for c in split_caps(str(raw)):
        caps.extend(RUNSC_ALL_CAPABILITIES if c == "all" else (c,))
    return tuple(dict.fromkeys(caps))


def flag_true(flags: dict, name: str) -> bool:
    return go_parse_bool(flags.get(name, "false")) is True


# ---------------------------------------------------------------- supported drivers


def load_driver_table(path: str | None = None) -> dict:
    """The dated nvproxy driver list: the shipped data file, or ``path``."""
    if path is None:
        import json
        from importlib import resources  # lazily: ~10 ms the shim's create path need not pay

        text = resources.files("gpuctk.sandbox").joinpath("data/nvproxy-drivers.json").read_text("utf-8")
        source = "gpuctk.sandbox/data/nvproxy-drivers.json"
        table = json.loads(text)
    else:
        from gpuctk.fileio import load_json

        source = path
        table = load_json(path, "nvproxy driver list")
    from gpuctk.errors import GpuctkError

    if not isinstance(table, dict):
        raise GpuctkError(f"{source}: expected a JSON object with date, supported and unsupported")
    for key, kind in (("date", str), ("supported", list), ("unsupported", list), ("arm64_only", list)):
        if key not in table:
            if key == "arm64_only":
                continue
            raise GpuctkError(f"{source}: {key}: missing")
        if not isinstance(table[key], kind) or (
            kind is list and not all(isinstance(v, str) for v in table[key])
        ):
            raise GpuctkError(
                f"{source}: {key}: expected {'a string' if kind is str else 'a list of strings'}"
            )
    table.setdefault("arm64_only", [])
    return table


def classify_driver(version: str, table: dict) -> str:
    """ "supported", "arm64_only", "unsupported" (needs the allow flag) or "unknown" (exact match)."""
    v = version.strip()
    for key in ("supported", "arm64_only", "unsupported"):
        if v in table.get(key, ()):
            return key
    return "unknown"


def nearest_supported(version: str, table: dict) -> str | None:
    """The supported version on the same branch with the closest number, else the newest one."""

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", v))

    supported = list(table.get("supported", ()))
    if not supported:
        return None
    branch = version.split(".")[0]
    same = [v for v in supported if v.split(".")[0] == branch]
    if same:
        target = key(version)
        newer = [v for v in same if key(v) >= target]
        return min(newer, key=key) if newer else max(same, key=key)
    return max(supported, key=key)
