"""Bounded reads of the files discovery and generation are pointed at (inventory JSON, CSV
mount specs, nvidia-smi XML): regular files only, opened non-blocking (a FIFO or
``/dev/zero`` never blocks or eats memory), size-capped, one-line errors naming the file."""

from __future__ import annotations

from gpuctk.cdi.errors import escape
from gpuctk.errors import GpuctkError


def read_regular(path: str, what: str, limit: int) -> bytes:
    """The bytes of ``path`` through ``gpuctk.fileio.read_regular``; GpuctkError
    ``PATH: cannot read WHAT: REASON`` otherwise."""
    from gpuctk import fileio

    try:
        return fileio.read_regular(path, limit)
    except IsADirectoryError:
        reason = "a directory"
    except fileio.NotRegularFileError:
        reason = "not a regular file"
    except fileio.FileTooLargeError:
        reason = f"larger than {limit >> 10} KiB"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise GpuctkError(f"{escape(path)}: cannot read {what}: {reason}")
