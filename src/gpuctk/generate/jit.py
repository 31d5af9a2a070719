"""Just-in-time CDI specs for the runtime shim (``jit-cdi`` mode), with a cache.

The full node spec (every device under index and UUID names, plus ``all``) is cached
under a key made of the driver version and a cheap inventory fingerprint, both read
with a handful of ``stat``/``read`` calls: a warm call walks no directories and runs no
discovery. Installing another driver changes ``/proc/driver/nvidia/version`` (or the
root's ld.so.cache), which changes the key. Stdlib-only: this runs on the create path.

The cache decides what gets mounted into containers, so it is opened like a secret store:
the path is walked from ``/`` one component at a time through directory fds
(``O_NOFOLLOW``: no symlink anywhere), every component must be owned by root or by us and
not writable by group/others (a root-owned sticky directory such as ``/tmp`` excepted, but
never as the cache directory itself), missing components are created with mode 0700
whatever the umask, and entries are read and written (temp file + rename) relative to the
cache directory's fd, so swapping any component for a symlink after the check reaches
nothing. The number of entries is capped.
"""

from __future__ import annotations

import os
import stat

from gpuctk import _fastjson as fastjson
from gpuctk.errors import GpuctkError

TYPE_CHECKING = False  # keep `typing` off the warm create path
if TYPE_CHECKING:
    from typing import Any

KIND = "runtime.nvidia.com/gpu"
ENV_CACHE_DIR = "GPUCTK_JIT_CACHE_DIR"
MAX_ENTRIES = 64
_memo: dict[str, dict[str, Any]] = {}
# the generator modes that read CSV files (auto resolves to csv on a Tegra host)
CSV_MODES = ("auto", "csv")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def cache_key(
    cfg: dict[str, Any], driver_root: str, dev_root: str, mode: str = "auto", csv_all: bool = False
) -> str:
    """Driver version + inventory fingerprint + the options that shape the spec, as one
    string; the entry stores it whole and a hit needs an exact match (no hash collisions).
    In the modes that read CSV files, the CSV selection (base files or all) and the
    signature of the mount-spec directory and of each selected file are part of it: editing,
    adding or removing a CSV file is seen by the next create."""
    jit = ((cfg.get("nvidia-container-runtime") or {}).get("modes") or {}).get("jit-cdi") or {}
    inventory_env = os.environ.get("GPUCTK_INVENTORY", "")
    csv_part = ""
    if mode in CSV_MODES:
        csv_dir = _csv_dir(cfg)
        # base files: three stats, no listing; all files: the directory (its mtime follows
        # every file added, removed or renamed) and each file in it
        files = csv_files(cfg, True) if csv_all else _base_csv_paths(csv_dir)
        head = ["all", csv_dir, _stat_sig(csv_dir)] if csv_all else ["base"]
        csv_part = "\x01".join(head + [f"{f}={_stat_sig(f)}" for f in files])
    parts = [
        "v2",  # v2: gpuctk-hook run-steps (one hook process); an older gpuctk never reads these
        mode,
        os.path.abspath(driver_root),
        os.path.abspath(dev_root),
        _hook_path(cfg),
        csv_part,
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
    """An absolute ``[nvidia-ctk] path`` as given (upstream's JIT names it: ``[nvidia-ctk, hook,
    …]``, ``internal/modifier/cdi.go``); otherwise as ``cdi generate`` chooses."""
    from gpuctk.generate.hooks import choose_hook_path

    configured = ((cfg.get("nvidia-ctk") or {}).get("path") or "").strip()
    if os.path.isabs(configured):
        return configured
    return choose_hook_path(configured)[0]


def _csv_dir(cfg: dict[str, Any]) -> str:
    """``modes.csv.mount-spec-path``: a host path, never joined with the driver root (upstream
    reads it as given: NVIDIA/nvidia-container-toolkit ``internal/modifier/csv.go``)."""
    modes = (cfg.get("nvidia-container-runtime") or {}).get("modes") or {}
    return os.path.abspath(
        str(
            (modes.get("csv") or {}).get("mount-spec-path")
            or "/etc/nvidia-container-runtime/host-files-for-container.d"
        )
    )


def csv_files(cfg: dict[str, Any], csv_all: bool = False) -> list[str]:
    """The CSV files of the JIT spec: the ``*.csv`` files of the mount-spec directory on the
    host, only the base files (``devices.csv``, ``drivers.csv``, ``l4t.csv``) unless
    ``csv_all`` (``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``), as upstream's
    ``csv.GetFileList`` + ``csv.BaseFilesOnly`` (NVIDIA/nvidia-container-toolkit
    ``internal/modifier/csv.go``). When the directory holds none of them, the base files'
    paths there: the generator then reports them missing instead of looking elsewhere."""
    directory = _csv_dir(cfg)
    base = _base_csv_paths(directory)
    if csv_all:
        from gpuctk.discover.csvfiles import list_csv_dir

        found = list_csv_dir(directory)
    else:  # the base files that are there (upstream keeps exactly these names of the listing)
        found = [p for p in base if os.path.isfile(p)]
    return found or base


def _base_csv_paths(directory: str) -> list[str]:
    from gpuctk.generate.constants import CSV_BASE_FILES

    return [os.path.join(directory, f) for f in CSV_BASE_FILES]


def _full_spec(
    cfg: dict[str, Any], driver_root: str, dev_root: str, mode: str = "auto", csv_all: bool = False
) -> dict[str, Any]:
    from gpuctk.generate import GenerateOptions, generate_spec

    jit = ((cfg.get("nvidia-container-runtime") or {}).get("modes") or {}).get("jit-cdi") or {}
    opts = GenerateOptions(
        mode=mode,
        driver_root=driver_root,
        dev_root=dev_root,
        device_name_strategies=["index", "uuid"],
        device_ids=["all"],
        vendor="runtime.nvidia.com",
        device_class="gpu" if mode == "auto" else None,
        hook_path=_hook_path(cfg),
        csv_files=csv_files(cfg, csv_all) if mode in CSV_MODES else [],
        feature_flags=list(jit.get("nvcdi-feature-flags") or []),
        disabled_hooks=list(jit.get("nvcdi-disable-hooks") or []),
    )
    spec, _warnings = generate_spec(opts)
    return spec


def _component_problem(st: os.stat_result, leaf: bool) -> str | None:
    euid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid not in (0, euid):
        return f"owned by uid {st.st_uid}"
    if st.st_mode & 0o022 and (leaf or not (st.st_uid == 0 and st.st_mode & stat.S_ISVTX)):
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    if leaf and st.st_uid != euid:
        return f"owned by uid {st.st_uid}, not by us"
    return None


def open_cache_dir(create: bool) -> int | None:
    """An fd of the cache directory after checking every component of its path (see the
    module doc), creating missing ones (mode 0700) when ``create``; None when it is absent
    or not trusted. The caller closes the fd."""
    path = os.path.abspath(cache_dir())
    parts = [p for p in path.split("/") if p]
    try:
        fd = os.open("/", _DIR_FLAGS)
    except OSError:
        return None
    try:
        for i, name in enumerate(parts):
            leaf = i == len(parts) - 1
            created = False
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                    created = True
                except FileExistsError:
                    pass
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if created:
                os.fchmod(fd, 0o700)  # explicit: the umask may have taken bits away (or left none)
            if _component_problem(os.fstat(fd), leaf) is not None:
                return None
        result, fd = fd, -1
        return result
    except OSError:  # a symlink (ELOOP), a file in the way, EACCES…: no cache
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def _entry_name(key: str) -> str:
    return os.path.basename(entry_path(key))


def _load_cached(key: str) -> dict[str, Any] | None:
    if key in _memo:
        return _memo[key]
    dfd = open_cache_dir(create=False)
    if dfd is None:
        return None
    try:
        fd = os.open(_entry_name(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        if not _owned_private(os.fstat(fd)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            entry = fastjson.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("spec"), dict):
        return None
    _memo[key] = entry["spec"]
    return entry["spec"]


def _owned_private(st: os.stat_result) -> bool:
    return (
        stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077 and st.st_nlink == 1
    )


def _store(key: str, spec: dict[str, Any]) -> None:
    _memo[key] = spec
    dfd = open_cache_dir(create=True)
    if dfd is None:
        return  # a cache we cannot trust is not used: it only costs speed
    name = _entry_name(key)
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
        )
        try:
            os.fchmod(fd, 0o600)
            data = fastjson.dumps({"key": key, "spec": spec}).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)  # a lost entry is just regenerated
        _prune(dfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)


def _prune(dfd: int) -> None:
    """Keep the MAX_ENTRIES newest entries (one per driver/options; old drivers age out)."""
    names = [n for n in os.listdir(dfd) if n.endswith(".json") and not n.startswith(".")]
    if len(names) <= MAX_ENTRIES:
        return
    aged = []
    for n in names:
        try:
            aged.append((os.stat(n, dir_fd=dfd, follow_symlinks=False).st_mtime_ns, n))
        except OSError:
            continue
    for _, n in sorted(aged)[: len(aged) - MAX_ENTRIES]:
        try:
            os.unlink(n, dir_fd=dfd)
        except OSError:
            pass


def full_spec_cached(
    cfg: dict[str, Any],
    driver_root: str = "/",
    dev_root: str | None = None,
    mode: str = "auto",
    csv_all: bool = False,
) -> tuple[dict[str, Any], bool]:
    """(the full node spec of ``mode``, whether it came from the cache). ``csv_all``: use
    every ``*.csv`` file of the mount-spec directory, not only the base files (modes that
    read CSV files only; ignored by the others, which then share one cache entry)."""
    dev_root = dev_root or driver_root
    csv_all = csv_all and mode in CSV_MODES
    key = cache_key(cfg, driver_root, dev_root, mode, csv_all)
    spec = _load_cached(key)
    if spec is not None:
        return spec, True
    spec = _full_spec(cfg, driver_root, dev_root, mode, csv_all)
    _store(key, spec)
    return spec, False


def jit_spec(
    device_ids: list[str],
    cfg: dict[str, Any],
    *,
    driver_root: str = "/",
    dev_root: str | None = None,
    mode: str = "auto",
    csv_all: bool = False,
) -> dict[str, Any]:
    """A CDI spec holding only the requested devices and the common edits.

    ``mode`` ``auto`` gives kind runtime.nvidia.com/gpu (ids: ``all``, index, UUID,
    ``<gpu>:<mig>``, MIG UUID; empty = all); other generator modes (``gds``, ``imex``,
    ``csv``, ...) give that mode's class (``runtime.nvidia.com/gds``, ``…/imex-channel``).
    ``csv_all`` (``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``): in ``auto`` and ``csv``, every
    ``*.csv`` file of ``modes.csv.mount-spec-path``, not only the base files.
    """
    from gpuctk.generate.constants import MODES

    if mode not in MODES:
        raise GpuctkError(f"unknown JIT CDI mode {mode!r}")
    full, _hit = full_spec_cached(cfg, driver_root, dev_root, mode, csv_all)
    by_name = {d["name"]: d for d in full.get("devices") or []}
    ids = [i.strip() for i in device_ids if i.strip()] or ["all"]
    devices = []
    if ids != ["none"]:
        missing = [i for i in ids if i not in by_name]
        if missing:
            kind = full.get("kind", KIND)
            from gpuctk.cdi.errors import escape  # the ids come from the container's environment

            raise GpuctkError(
                f"unresolvable CDI devices {escape(', '.join(kind + '=' + i for i in missing))}"
            )
        devices = [by_name[i] for i in dict.fromkeys(ids)]
    spec = {k: v for k, v in full.items() if k != "devices"}
    spec["devices"] = devices
    return spec
