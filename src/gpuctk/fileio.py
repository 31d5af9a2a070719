"""Atomic file writes (temp file in the same directory, fsync, rename, mode kept) and
size-capped reads of config-like files.

Device nodes and FIFOs (``--output /dev/stdout``) are written through, never replaced;
a symlink is followed and its target replaced.

Every file gpuctk writes goes through here, so a crash or a full disk never leaves a
half-written file behind. Stdlib only: the runtime shim and the hooks use it.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up; the shim imports this module
if TYPE_CHECKING:
    from typing import IO, AnyStr

# Far above any real config.json, config.toml, daemon.json or CDI spec.
MAX_READ_BYTES = 64 << 20


def read_limited(f: IO[AnyStr], limit: int = MAX_READ_BYTES) -> AnyStr:
    """Read a whole config-like file, failing with OSError(EFBIG) past ``limit``.

    ``--config /dev/zero``, a FIFO or a runaway file would otherwise be read until memory
    runs out; every reader already turns an OSError into a one-line "FILE: cannot read" error.
    """
    data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB, not a config file")
    return data


def read_text(path: str, what: str) -> str:
    """The whole UTF-8 text of ``path`` (``-``: standard input), capped at MAX_READ_BYTES.

    Failures are one-line errors: ``PATH: cannot read WHAT: REASON``.
    """
    import sys

    from gpuctk.errors import GpuctkError

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            return read_limited(sys.stdin)
        with open(path, encoding="utf-8") as f:
            return read_limited(f)
    except UnicodeDecodeError:
        raise GpuctkError(f"{name}: cannot read {what}: not UTF-8 text") from None
    except OSError as exc:
        raise GpuctkError(f"{name}: cannot read {what}: {exc.strerror or exc}") from None


def load_json(path: str, what: str) -> object:
    """``read_text`` then JSON: ``PATH: invalid JSON: line L column C: MESSAGE`` on bad input.

    For the admin CLI; the runtime's create path parses with ``gpuctk._fastjson`` instead.
    """
    import json

    from gpuctk.errors import GpuctkError

    text = read_text(path, what)
    name = "<stdin>" if path == "-" else path
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GpuctkError(f"{name}: invalid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise GpuctkError(f"{name}: invalid JSON: nested too deeply") from None


def atomic_write(path: str, data: bytes | str, mode: int | None = None, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``mode``: the file mode to set; ``None`` keeps the mode of an existing file and
    uses 0o644 for a new one. ``durable=False`` skips the fsyncs: the rename still means
    no reader ever sees a half-written file, but a power cut may lose the new content.
    Only for files that do not outlive a boot, such as a bundle's config.json.
    """
    if isinstance(data, str):
        data = data.encode()
    # A symlinked file (e.g. /etc/containerd/config.toml -> elsewhere) is edited at its
    # target; replacing the link itself would silently detach the engine from its config.
    if os.path.islink(path):
        path = os.path.realpath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path}: is a directory")
        # /dev/null, /dev/stdout, a FIFO: write through. Renaming over a device node
        # would replace, say, /dev/null with a regular file for the whole host.
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if mode is None:
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o644
    # O_EXCL on a random name in the same directory: what tempfile.mkstemp does, without
    # importing tempfile (and its random/shutil imports) on the runtime's create path.
    base = os.path.join(directory, "." + os.path.basename(path) + ".")
    for _ in range(100):
        tmp = base + os.urandom(6).hex() + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path}: could not create a temporary file beside it")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not durable:
        return
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
