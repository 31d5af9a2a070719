"""Root-only ``marshal`` cache files for the hot paths (parsed config.toml, CDI spec scans).

The runtime shim runs once per container; re-reading config.toml (tomllib) and every CDI spec
(JSON, or YAML through PyYAML) on each create costs more than the rest of its work. These
caches hold the parsed result keyed by the stat of its inputs, so any change misses.

Safety: ``marshal`` must never read attacker-controlled bytes. The cache lives in a root-only
directory (``/run/gpuctk``; ``$GPUCTK_CONFIG_CACHE_DIR`` overrides, "" disables; none for
non-root users). A file is read only if it is a regular file (no symlink) owned by us and
writable by nobody else, and written only into a real directory we own that nobody else can
write (``atomic_write`` would follow a symlink planted at the name). A cache that cannot be
read or written is simply not used. Stdlib only.
"""

from __future__ import annotations

import os
import stat

ENV_CACHE_DIR = "GPUCTK_CONFIG_CACHE_DIR"
SUFFIX = ".marshal"


def cache_dir() -> str | None:
    """$GPUCTK_CONFIG_CACHE_DIR ("" disables), else /run/gpuctk for root, else none."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env is not None:
        return env or None
    return "/run/gpuctk" if os.geteuid() == 0 else None


def trusted_dir(directory: str) -> bool:
    """A real directory (not a symlink) we own and nobody else can write."""
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def path_for(prefix: str, identity: str) -> str | None:
    """The cache file for ``identity`` (a path, a list of dirs…), or None when caching is off."""
    d = cache_dir()
    if not d:
        return None
    h = 0xCBF29CE484222325  # FNV-1a: stable across processes, no hashlib import
    for b in identity.encode(errors="surrogateescape"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(d, f"{prefix}{h:016x}{SUFFIX}")


def read(path: str) -> object | None:
    """The object stored at ``path``, or None if absent, untrusted or unreadable."""
    import marshal

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            # loads(read()): marshal.load(file) calls file.readinto for every object (10x slower)
            return marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)


def write(path: str, obj: object, *, prefix: str, keep: int) -> None:
    """Store ``obj`` at ``path`` (from :func:`path_for` with ``prefix``), then keep only the
    ``keep`` newest files of that prefix."""
    import marshal

    try:
        blob = marshal.dumps(obj)  # type: ignore[arg-type]
    except ValueError:
        return  # something marshal cannot hold (never for JSON-like data)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not trusted_dir(directory):
            return
        from gpuctk.fileio import atomic_write

        # a cache is rebuilt from its inputs after a crash: no fsync needed
        atomic_write(path, blob, mode=0o600, durable=False)
    except OSError:
        return
    _prune(directory, prefix, keep)


def _prune(directory: str, prefix: str, keep: int) -> None:
    """Keep the newest entries only (temp configs and spec dirs of tests must not pile up)."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(SUFFIX)]
        if len(names) <= keep:
            return
        paths = sorted((os.path.join(directory, n) for n in names), key=lambda p: os.stat(p).st_mtime_ns)
        for p in paths[:-keep]:
            os.unlink(p)
    except OSError:
        pass
