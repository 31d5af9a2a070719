"""Bounded reads of the files discovery and generation are pointed at (inventory JSON, CSV
mount specs, nvidia-smi XML): regular files only, opened non-blocking (a FIFO or
``/dev/zero`` never blocks or eats memory), size-capped, one-line errors naming the file."""

from __future__ import annotations

import os
import stat

from gpuctk.cdi.errors import escape
from gpuctk.errors import GpuctkError


def read_regular(path: str, what: str, limit: int) -> bytes:
    """The bytes of ``path``; GpuctkError ``PATH: cannot read WHAT: REASON`` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) else "invalid path"
        raise GpuctkError(f"{escape(path)}: cannot read {what}: {reason or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise GpuctkError(f"{escape(path)}: cannot read {what}: {kind}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise GpuctkError(f"{escape(path)}: cannot read {what}: larger than {limit >> 10} KiB")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise GpuctkError(f"{escape(path)}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
