"""A parsed-spec cache for ``Registry(..., cache=True)`` (the runtime shim's create path).

Every container start would otherwise read, parse and validate every spec file in the
spec dirs; a YAML spec (what ``nvidia-ctk cdi generate`` writes by default) would also pull
PyYAML into the shim. The cache keeps the result of a scan (canonical spec dicts and
per-file errors) in one ``marshal`` file per list of spec dirs, keyed by the stat of every
candidate file (device, inode, size, mtime, ctime: any rewrite, rename or chmod misses) and
by gpuctk's version. A scan that hits loads no spec at all.

Where it lives and when a file is trusted: :mod:`gpuctk._cachefile` (root-only directory,
files we own that nobody else can write, because ``marshal`` must never read attacker-
controlled bytes).
"""

from __future__ import annotations

import os
import stat

from gpuctk import _cachefile as cachefile
from gpuctk._cachefile import ENV_CACHE_DIR, cache_dir, trusted_dir  # noqa: F401 - re-exported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PREFIX = "cdi-"
_MAX_ENTRIES = 32
# A file changed less than this long ago may change again within the same timestamp tick
# (mtime/ctime advance in coarse steps) without its stat changing: such a scan is not stored
# ("racy git" rule), so an in-place rewrite of the same size can never be served stale.
RACY_NS = 2_000_000_000
SPEC_EXTENSIONS = (".json", ".yaml")


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
            entries.append(
                (
                    name,
                    st.st_dev,
                    st.st_ino,
                    st.st_mode,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                    stat.S_ISLNK(lst.st_mode),
                    lst.st_ino,
                    lst.st_ctime_ns,
                )
            )
        out.append((directory, tuple(entries)))
    return tuple(out)


def _file_for(spec_dirs: list[str]) -> str | None:
    return cachefile.path_for(_PREFIX, "\0".join(spec_dirs))


def _key(spec_dirs: list[str], fingerprint: tuple, verdicts: tuple | None) -> tuple:
    from gpuctk import __version__

    return (__version__, tuple(spec_dirs), fingerprint, verdicts)


def load(
    spec_dirs: list[str], fingerprint: tuple, verdicts: tuple | None = None
) -> tuple[list[tuple[dict[str, Any], str, int]], dict[str, list[str]]] | None:
    """(specs as (canonical dict, source, priority), errors) of a cached scan, or None.

    ``verdicts``: the trust verdicts of a ``trusted_only`` scan (None otherwise), part of the
    key because a chmod of a spec directory changes no file's stat."""
    path = _file_for(spec_dirs)
    data = cachefile.read(path) if path else None
    if not (isinstance(data, tuple) and len(data) == 3 and data[0] == _key(spec_dirs, fingerprint, verdicts)):
        return None
    specs, errors = data[1], data[2]
    if not isinstance(specs, list) or not isinstance(errors, dict):
        return None
    return specs, errors


def store(
    spec_dirs: list[str],
    fingerprint: tuple,
    specs: list[tuple[dict[str, Any], str, int]],
    errors: dict[str, list[str]],
    verdicts: tuple | None = None,
) -> None:
    path = _file_for(spec_dirs)
    if path is None:
        return
    if any(m.startswith("failed to read CDI Spec") for msgs in errors.values() for m in msgs):
        return  # a read error (EIO, EACCES…) may be transient: only parse results are kept
    import time

    recent = time.time_ns() - RACY_NS
    if any(max(e[5], e[6], e[9]) > recent for _, entries in fingerprint if entries for e in entries):
        return  # racily fresh: see RACY_NS
    cachefile.write(
        path, (_key(spec_dirs, fingerprint, verdicts), specs, errors), prefix=_PREFIX, keep=_MAX_ENTRIES
    )
