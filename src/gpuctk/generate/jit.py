"""Just-in-time CDI specs for the runtime shim (``jit-cdi`` mode), with a cache.

The full node spec (every device under index and UUID names, plus ``all``) is cached
under a key made of the driver version and a cheap inventory fingerprint, both read
with a handful of ``stat``/``read`` calls: a warm call walks no directories and runs no
discovery. Installing another driver changes ``/proc/driver/nvidia/version`` (or the
root's ld.so.cache), which changes the key. Stdlib-only: this runs on the create path.
"""

from __future__ import annotations

import os
import stat

from gpuctk import _fastjson as fastjson
from gpuctk._cachefile import trusted_dir
from gpuctk.errors import GpuctkError

TYPE_CHECKING = False  # keep `typing` off the warm create path
if TYPE_CHECKING:
    from typing import Any

KIND = "runtime.nvidia.com/gpu"
ENV_CACHE_DIR = "GPUCTK_JIT_CACHE_DIR"
_memo: dict[str, dict[str, Any]] = {}


def cache_dir() -> str:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/gpuctk/jit-cache"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", f"gpuctk-jit-{os.getuid()}")


def _stat_sig(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _read_small(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except OSError:
        return "-"


def _join(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def cache_key(cfg: dict[str, Any], driver_root: str, dev_root: str, mode: str = "auto") -> str:
    """Driver version + inventory fingerprint + the options that shape the spec, as one
    string; the entry stores it whole and a hit needs an exact match (no hash collisions)."""
    jit = ((cfg.get("nvidia-container-runtime") or {}).get("modes") or {}).get("jit-cdi") or {}
    inventory_env = os.environ.get("GPUCTK_INVENTORY", "")
    parts = [
        "v1",
        mode,
        os.path.abspath(driver_root),
        os.path.abspath(dev_root),
        _hook_path(cfg),
        _csv_dir(cfg),
        ",".join(jit.get("nvcdi-feature-flags") or []),
        ",".join(jit.get("nvcdi-disable-hooks") or []),
        # driver version: the kernel module's version file, and the root's ld.so.cache
        _read_small(_join(dev_root, "/proc/driver/nvidia/version")),
        _stat_sig(_join(driver_root, "/etc/ld.so.cache")),
        # inventory fingerprint: GPU list, MIG capability nodes, device nodes
        _stat_sig(_join(dev_root, "/proc/driver/nvidia/gpus")),
        _stat_sig(_join(dev_root, "/proc/driver/nvidia-caps/mig-minors")),
        _stat_sig(_join(dev_root, "/dev")),
        _stat_sig(_join(dev_root, "/dev/nvidia-caps")),
        inventory_env,
        _stat_sig(inventory_env) if inventory_env else "",
    ]
    return "\0".join(parts)


def entry_path(key: str) -> str:
    """The cache file of ``key``: named by its FNV-1a hash (hashlib's OpenSSL import alone
    costs ~2 ms of every create)."""
    h = 0xCBF29CE484222325
    for b in key.encode(errors="surrogateescape"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(cache_dir(), f"{h:016x}.json")


def _hook_path(cfg: dict[str, Any]) -> str:
    from gpuctk.generate.hooks import choose_hook_path

    return choose_hook_path(((cfg.get("nvidia-ctk") or {}).get("path") or "").strip())[0]


def _csv_dir(cfg: dict[str, Any]) -> str:
    modes = (cfg.get("nvidia-container-runtime") or {}).get("modes") or {}
    return str(
        (modes.get("csv") or {}).get("mount-spec-path")
        or "/etc/nvidia-container-runtime/host-files-for-container.d"
    )


def _full_spec(cfg: dict[str, Any], driver_root: str, dev_root: str, mode: str = "auto") -> dict[str, Any]:
    from gpuctk.generate import GenerateOptions, generate_spec
    from gpuctk.generate.constants import CSV_BASE_FILES

    jit = ((cfg.get("nvidia-container-runtime") or {}).get("modes") or {}).get("jit-cdi") or {}
    csv_files = []
    if mode in ("auto", "csv"):
        base = os.path.join(driver_root, _csv_dir(cfg).lstrip("/"))
        csv_files = [os.path.join(base, f) for f in CSV_BASE_FILES if os.path.exists(os.path.join(base, f))]
    opts = GenerateOptions(
        mode=mode,
        driver_root=driver_root,
        dev_root=dev_root,
        device_name_strategies=["index", "uuid"],
        device_ids=["all"],
        vendor="runtime.nvidia.com",
        device_class="gpu" if mode == "auto" else None,
        hook_path=_hook_path(cfg),
        csv_files=csv_files,
        feature_flags=list(jit.get("nvcdi-feature-flags") or []),
        disabled_hooks=list(jit.get("nvcdi-disable-hooks") or []),
    )
    spec, _warnings = generate_spec(opts)
    return spec


def _load_cached(key: str) -> dict[str, Any] | None:
    if key in _memo:
        return _memo[key]
    d = cache_dir()
    # a cached spec decides what gets mounted into containers: trust it only when it is a
    # regular file (no symlink planted at the name) in a real directory, both ours and
    # writable by nobody else (e.g. not a pre-created /tmp dir of another user)
    if not trusted_dir(d):
        return None
    try:
        fd = os.open(entry_path(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _owned_private(os.fstat(fd)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            entry = fastjson.loads(f.read())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("spec"), dict):
        return None
    _memo[key] = entry["spec"]
    return entry["spec"]


def _owned_private(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _store(key: str, spec: dict[str, Any]) -> None:
    _memo[key] = spec
    try:
        from gpuctk.fileio import atomic_write

        d = cache_dir()
        os.makedirs(d, mode=0o700, exist_ok=True)
        if not trusted_dir(d):
            return  # never write through a symlinked or shared directory
        atomic_write(
            entry_path(key), fastjson.dumps({"key": key, "spec": spec}), mode=0o600, durable=False
        )  # a lost entry is just regenerated
    except OSError:
        pass  # a cache we cannot write only costs speed


def full_spec_cached(
    cfg: dict[str, Any], driver_root: str = "/", dev_root: str | None = None, mode: str = "auto"
) -> tuple[dict[str, Any], bool]:
    """(the full node spec of ``mode``, whether it came from the cache)."""
    dev_root = dev_root or driver_root
    key = cache_key(cfg, driver_root, dev_root, mode)
    spec = _load_cached(key)
    if spec is not None:
        return spec, True
    spec = _full_spec(cfg, driver_root, dev_root, mode)
    _store(key, spec)
    return spec, False


def jit_spec(
    device_ids: list[str],
    cfg: dict[str, Any],
    *,
    driver_root: str = "/",
    dev_root: str | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """A CDI spec holding only the requested devices and the common edits.

    ``mode`` ``auto`` gives kind runtime.nvidia.com/gpu (ids: ``all``, index, UUID,
    ``<gpu>:<mig>``, MIG UUID; empty = all); other generator modes (``gds``, ``imex``,
    ``csv``, ...) give that mode's class (``runtime.nvidia.com/gds``, ``…/imex-channel``).
    """
    from gpuctk.generate.constants import MODES

    if mode not in MODES:
        raise GpuctkError(f"unknown JIT CDI mode {mode!r}")
    full, _hit = full_spec_cached(cfg, driver_root, dev_root, mode)
    by_name = {d["name"]: d for d in full.get("devices") or []}
    ids = [i.strip() for i in device_ids if i.strip()] or ["all"]
    devices = []
    if ids != ["none"]:
        missing = [i for i in ids if i not in by_name]
        if missing:
            kind = full.get("kind", KIND)
            raise GpuctkError(f"unresolvable CDI devices {', '.join(kind + '=' + i for i in missing)}")
        devices = [by_name[i] for i in dict.fromkeys(ids)]
    spec = {k: v for k, v in full.items() if k != "devices"}
    spec["devices"] = devices
    return spec
