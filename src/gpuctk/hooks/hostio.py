"""Bounded reads of the few host inputs a hook has: a file named in argv (``--container-spec``,
``--host-params-file``, the ldconfig binary, ``<bundle>/config.json``) and stdin.

A FIFO with no writer, ``/dev/zero`` or a huge file named there must neither block the hook
nor exhaust its memory: files are opened non-blocking, must be regular, and are read up to a
cap; stdin is read up to a cap too (its writer is the runtime, and the hook's deadline bounds
the wait). Files go through ``gpuctk.fileio.read_regular`` (stdlib only: os, stat, errno;
the hooks stay cheap to start).
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

STATE_LIMIT = 4 << 20  # an OCI state is a few hundred bytes
CONFIG_JSON_LIMIT = 64 << 20  # config.json of a container: large at most in its env/mounts


def _read_fd(fd: int, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        b = os.read(fd, min(1 << 20, limit + 1 - total))
        if not b:
            return b"".join(chunks)
        total += len(b)
        chunks.append(b)
        if total > limit:
            raise GpuctkError(f"{what}: larger than {limit} bytes")


def read_host_file(path: str, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of the regular host file ``path`` (anything else refused before
    it is read; the open never blocks)."""
    if "\0" in path:
        raise GpuctkError(f"{what} {path!r}: NUL byte in path")
    from gpuctk.fileio import FileTooLargeError, NotRegularFileError, read_regular

    try:
        return read_regular(path, limit)
    except (IsADirectoryError, NotRegularFileError):
        raise GpuctkError(f"{what} {path}: not a regular file") from None
    except FileTooLargeError:
        raise GpuctkError(f"{what} {path}: larger than {limit} bytes") from None
    except OSError as exc:
        raise GpuctkError(f"{what} {path}: {exc.strerror}") from None


def read_stdin(limit: int = STATE_LIMIT, what: str = "OCI state on stdin") -> bytes:
    """Stdin, at most ``limit`` bytes (``/dev/zero`` on stdin is an error, not a MemoryError)."""
    try:
        return _read_fd(0, limit, what)
    except OSError as exc:
        raise GpuctkError(f"{what}: {exc.strerror}") from None
