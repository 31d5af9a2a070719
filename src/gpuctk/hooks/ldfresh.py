"""update-ldcache's no-op case: the container's ``/etc/ld.so.cache`` is already what a run
would write, so neither the conf files nor ldconfig are touched (issue 15: a restarted
container, or a second hook run on the same root, costs no ldconfig).

Conservative: any doubt means "run". The cache counts as up to date only when ALL hold:

- not Alpine (musl has no cache; its path file is handled by the normal run), and
  ``/etc/ld.so.conf`` exists (a run would create it);
- the gpuctk conf files in ``/etc/ld.so.conf.d`` (``00-nvcr-*``/``zz-nvcr-*``) are exactly the
  ones a run would write, byte for byte (none when there is nothing to add);
- ``/etc/ld.so.cache`` is a regular file, there is no ``/etc/ld.so.cache~``, and the cache's
  mtime is not in the future;
- the cache is not older than ``/etc/ld.so.conf`` (equal counts: ldconfig's own soname links
  land in the same clock tick as the cache), the ``/etc/ld.so.conf.d`` directory and
  every entry in it, and every directory ldconfig scans (the folders, the system dirs, the
  directories the conf tree names, their ``glibc-hwcaps`` subdirectories; for an absent one
  its nearest existing ancestor): adding, removing or
  renaming a library, a mount point runc creates for a bind-mounted library, or a link the
  create-symlinks step adds, all change a directory's mtime;
- no scanned directory is reached across a mount point (a directory bind-mounted from the
  host keeps the host's mtime, which says nothing about this cache): the lookups are the
  ``strict`` ones of :class:`~gpuctk.hooks.confine.Root`, which refuse any crossing.

Every lookup is confined to the root, like the rest of the hook.
"""

from __future__ import annotations

import os
import stat
import time

from gpuctk.errors import GpuctkError
from gpuctk.hooks.ldconf import _conf_dirs, _ours, plan_conf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from gpuctk.hooks.confine import Root

CONF_D = "/etc/ld.so.conf.d"
MAX_CHECKED = 4096  # paths compared with the cache's mtime; more than that: just run


def ldcache_up_to_date(root: Root, folders: list[str]) -> bool:
    """Whether update-ldcache would change nothing (see the module doc); False on any doubt."""
    try:
        return _up_to_date(root, folders)
    except (OSError, GpuctkError, ValueError):
        return False


def _up_to_date(root: Root, folders: list[str]) -> bool:
    add, sysdirs, _debian, alpine = plan_conf(root, folders)
    if alpine or not root.is_file("/etc/ld.so.conf"):
        return False
    cache = root.lstat("/etc/ld.so.cache")
    if cache is None or not stat.S_ISREG(cache.st_mode) or root.lstat("/etc/ld.so.cache~") is not None:
        return False
    t = cache.st_mtime_ns
    if t > time.time_ns():
        return False
    names = root.listdir(CONF_D) if root.is_dir(CONF_D) else []
    ours = sorted(n for n in names if _ours(n))
    want = {"00-nvcr-": "".join(d + "\n" for d in add), "zz-nvcr-": "".join(d + "\n" for d in sysdirs)}
    if not add:
        if ours:
            return False
    else:
        if [n[:8] for n in ours] != ["00-nvcr-", "zz-nvcr-"]:
            return False
        for n in ours:
            if root.read_bytes(f"{CONF_D}/{n}", 1 << 16, strict=True).decode() != want[n[:8]]:
                return False
    checked = ["/etc/ld.so.conf", CONF_D, *(f"{CONF_D}/{n}" for n in names)]
    dirs = list(dict.fromkeys([*add, *sysdirs, *_conf_dirs(root, "/etc/ld.so.conf", set())]))
    for d in dirs:
        st = _stat(root, d)
        if st is None:
            # absent (most system dirs of a small image): its removal would have changed the
            # nearest existing ancestor, which must then be older than the cache
            checked.append(_nearest_existing(root, d))
            continue
        if not stat.S_ISDIR(st.st_mode):
            return False
        checked.append(d)
        hw = d.rstrip("/") + "/glibc-hwcaps"
        if root.is_dir(hw):
            checked += [hw, *(f"{hw}/{n}" for n in root.listdir(hw, strict=True))]
    if len(checked) > MAX_CHECKED:
        return False
    for p in checked:
        st = _stat(root, p)
        if st is None or st.st_mtime_ns > t:
            return False
    return True


def _stat(root: Root, path: str) -> os.stat_result | None:
    """None when absent; OSError (EXDEV) when only reachable across a mount point."""
    try:
        fd = root.open(path, os.O_PATH, strict=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _nearest_existing(root: Root, path: str) -> str:
    while path not in ("", "/"):
        path = path.rsplit("/", 1)[0] or "/"
        if _stat(root, path) is not None:
            return path
    return "/"
