"""Atomic file writes: temp file in the same directory, fsync, rename, mode kept.

Every file gpuctk writes goes through here, so a crash or a full disk never leaves a
half-written file behind. Stdlib only: the runtime shim and the hooks use it.
"""

from __future__ import annotations

import os
import stat
import tempfile


def atomic_write(path: str, data: bytes | str, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``mode``: the file mode to set; ``None`` keeps the mode of an existing file and
    uses 0o644 for a new one.
    """
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
