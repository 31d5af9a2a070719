"""A parsed-spec cache for ``Registry(..., cache=True)`` (the runtime shim's create path).

Every container start would otherwise read, parse and validate every spec file in the
spec dirs; a YAML spec (what ``nvidia-ctk cdi generate`` writes by default) would also pull
PyYAML into the shim. The cache keeps the result of a scan (canonical spec dicts and
per-file errors) in one ``marshal`` file per list of spec dirs, keyed by the stat of every
candidate file (device, inode, size, mtime, ctime: any rewrite, rename or chmod misses) and
by gpuctk's version. A scan that hits loads no spec at all.

Safety: the cache lives in a root-only directory (``/run/gpuctk``, or
``$GPUCTK_CONFIG_CACHE_DIR``, "" disables; none for non-root users), and a cache file is
trusted only if it is a regular file (no symlink) owned by us and writable by nobody else,
because ``marshal`` must never read attacker-controlled bytes. A cache that cannot be read
or written is simply not used.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_CACHE_DIR = "GPUCTK_CONFIG_CACHE_DIR"  # shared with the config cache (gpuctk.config)
_PREFIX = "cdi-"
_SUFFIX = ".marshal"
_MAX_ENTRIES = 32
# A file changed less than this long ago may change again within the same timestamp tick
# (mtime/ctime advance in coarse steps) without its stat changing: such a scan is not stored
# ("racy git" rule), so an in-place rewrite of the same size can never be served stale.
RACY_NS = 2_000_000_000
SPEC_EXTENSIONS = (".json", ".yaml")


def cache_dir() -> str | None:
    env = os.environ.get(ENV_CACHE_DIR)
    if env is not None:
        return env or None
    return "/run/gpuctk" if os.geteuid() == 0 else None


def trusted_dir(directory: str) -> bool:
    """A real directory (not a symlink) we own and nobody else can write: only then may a
    cache file be written there (``atomic_write`` follows a symlink planted at the name)."""
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def scan_fingerprint(spec_dirs: list[str]) -> tuple | None:
    """What a scan of ``spec_dirs`` depends on, or None when it cannot be cached (an
    unreadable dir, an entry that cannot be stat'ed: rare, and the slow path reports it)."""
    out: list[tuple] = []
    for directory in spec_dirs:
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            out.append((directory, None))
            continue
        except OSError:
            return None
        entries: list[tuple] = []
        for name in names:
            dot = name.rfind(".")
            if dot < 0 or name[dot:] not in SPEC_EXTENSIONS:
                continue
            try:
                st = os.stat(os.path.join(directory, name))
                lst = os.lstat(os.path.join(directory, name))
            except OSError:
                return None
            entries.append((name, st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                            stat.S_ISLNK(lst.st_mode), lst.st_ino, lst.st_ctime_ns))
        out.append((directory, tuple(entries)))
    return tuple(out)


def _file_for(spec_dirs: list[str]) -> str | None:
    d = cache_dir()
    if not d:
        return None
    h = 0xCBF29CE484222325  # FNV-1a: stable across processes, no hashlib import
    for b in "\0".join(spec_dirs).encode(errors="surrogateescape"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(d, f"{_PREFIX}{h:016x}{_SUFFIX}")


def _key(spec_dirs: list[str], fingerprint: tuple) -> tuple:
    from gpuctk import __version__

    return (__version__, tuple(spec_dirs), fingerprint)


def load(spec_dirs: list[str], fingerprint: tuple) -> tuple[list[tuple[dict[str, Any], str, int]], dict[str, list[str]]] | None:
    """(specs as (canonical dict, source, priority), errors) of a cached scan, or None."""
    import marshal

    path = _file_for(spec_dirs)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None  # only a file we own and nobody else can write goes to marshal
        with os.fdopen(fd, "rb", closefd=False) as f:
            # loads(read()): marshal.load(file) calls file.readinto for every object (10x slower)
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    if not (isinstance(data, tuple) and len(data) == 3 and data[0] == _key(spec_dirs, fingerprint)):
        return None
    specs, errors = data[1], data[2]
    if not isinstance(specs, list) or not isinstance(errors, dict):
        return None
    return specs, errors


def store(spec_dirs: list[str], fingerprint: tuple, specs: list[tuple[dict[str, Any], str, int]],
          errors: dict[str, list[str]]) -> None:
    import marshal

    path = _file_for(spec_dirs)
    if path is None:
        return
    if any(m.startswith("failed to read CDI Spec") for msgs in errors.values() for m in msgs):
        return  # a read error (EIO, EACCES…) may be transient: only parse results are kept
    import time

    recent = time.time_ns() - RACY_NS
    if any(max(e[5], e[6], e[9]) > recent for _, entries in fingerprint if entries for e in entries):
        return  # racily fresh: see RACY_NS
    try:
        blob = marshal.dumps((_key(spec_dirs, fingerprint), specs, errors))
    except ValueError:
        return  # something marshal cannot hold (never for JSON-like data)
    try:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not trusted_dir(directory):
            return
        from gpuctk.fileio import atomic_write

        # a cache is rebuilt from the specs after a crash: no fsync needed
        atomic_write(path, blob, mode=0o600, durable=False)
        _prune(directory)
    except OSError:
        pass


def _prune(directory: str) -> None:
    """Keep the newest entries only (temp spec dirs of tests and demos must not pile up)."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(_PREFIX) and n.endswith(_SUFFIX)]
        if len(names) <= _MAX_ENTRIES:
            return
        paths = sorted((os.path.join(directory, n) for n in names), key=lambda p: os.stat(p).st_mtime_ns)
        for p in paths[:-_MAX_ENTRIES]:
            os.unlink(p)
    except OSError:
        pass
