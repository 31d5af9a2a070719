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

    A regular file only (a FIFO or a device is refused without blocking, see
    :func:`read_regular`); NUL bytes and invalid UTF-8 are refused. Failures are one-line
    errors: ``PATH: cannot read WHAT: REASON``.
    """
    import sys

    from gpuctk.errors import GpuctkError

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            return read_limited(sys.stdin)
        data = read_regular(path)
    except UnicodeDecodeError:
        raise GpuctkError(f"{name}: cannot read {what}: not UTF-8 text") from None
    except OSError as exc:
        raise GpuctkError(f"{name}: cannot read {what}: {exc.strerror or exc}") from None
    return decode_utf8(data, name, what)


def load_json(path: str, what: str) -> object:
    """``read_text`` then JSON: ``PATH: invalid JSON: line L column C: MESSAGE`` on bad input.

    For the admin CLI; the runtime's create path parses with ``gpuctk._fastjson`` instead.
    """
    text = read_text(path, what)
    return decode_json(text, "<stdin>" if path == "-" else path)


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


# --------------------------------------------------------------------------- bounded reads
def describe_kind(st_mode: int) -> str:
    """``a FIFO``, ``a character device``...: what a non-regular file is, for messages."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(st_mode):
            return name
    return "not a regular file"


class NotRegularFileError(OSError):
    """:func:`read_regular` met a FIFO, a device or a socket (``.kind``: ``a FIFO``...);
    errno EINVAL, strerror ``not a regular file: KIND``."""

    kind = "not a regular file"


class FileTooLargeError(OSError):
    """:func:`read_regular` met a file over its limit; errno EFBIG. ``.limit``: the cap,
    ``.size``: the size fstat reported (None when the file grew past the cap while read)."""

    limit = 0
    size: int | None = None


def read_regular(path: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of the regular file ``path``, never blocking and never past ``limit``.

    The one reader of user-supplied files (config.toml, config.json, CDI specs, engine
    configs, discovery inputs, a hook's host files): opened with O_NONBLOCK (a FIFO without
    a writer would block ``open`` itself) and O_NOCTTY, then checked with fstat on the open
    descriptor (no race with a rename in between, no separate stat needed):

    - a directory raises IsADirectoryError;
    - a FIFO, a device or a socket :class:`NotRegularFileError` (``not a regular file: a FIFO``);
    - a file over ``limit`` :class:`FileTooLargeError` before anything is read (or once it has
      grown past ``limit`` while read);
    - a NUL byte in ``path`` OSError(EINVAL, ``NUL byte in path``), not ValueError.

    FileNotFoundError and other OSErrors pass through, so callers keep their own wording
    (file and what) and map these kinds to their own reasons.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except ValueError:  # an embedded NUL byte
        raise OSError(errno.EINVAL, "NUL byte in path") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            kind = describe_kind(st.st_mode)
            error = NotRegularFileError(errno.EINVAL, f"not a regular file: {kind}")
            error.kind = kind
            raise error
        if st.st_size > limit:
            raise _too_large(limit, st.st_size)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read it
                raise _too_large(limit, None)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(limit: int, size: int | None) -> FileTooLargeError:
    error = FileTooLargeError(errno.EFBIG, f"larger than {_size(limit)}, not a config file")
    error.limit = limit
    error.size = size
    return error


def _size(limit: int) -> str:
    return (
        f"{limit >> 20} MiB"
        if limit >= 1 << 20
        else f"{limit >> 10} KiB"
        if limit >= 1 << 10
        else f"{limit} B"
    )


def escape_controls(text: str) -> str:
    """``text`` with control characters (newline, NUL, ESC...) and lone surrogates written as
    ``\\n``/``\\xNN``/``\\udcNN`` escapes, so a hostile key or path cannot break a one-line
    message or a terminal."""
    if text.isprintable() and not _has_surrogate(text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code < 0xE000 or code in (0x2028, 0x2029, 0x85):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_utf8(data: bytes, name: str, what: str = "file") -> str:
    """``data`` as UTF-8 text; NUL bytes and invalid UTF-8 are a one-line GpuctkError
    naming the byte offset (a config file never holds either)."""
    from gpuctk.errors import GpuctkError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GpuctkError(
            f"{name}: cannot read {what}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise GpuctkError(f"{name}: cannot read {what}: NUL byte at offset {nul}, not a text file")
    return text


# JSON/YAML/TOML nesting deeper than this is no config file; far below Python's recursion limit.
MAX_DEPTH = 64
# Integers longer than this are no config value (CPython refuses > 4300 digits with ValueError).
MAX_INT_DIGITS = 100


def check_depth(value: object, name: str, limit: int = MAX_DEPTH, kind: str = "JSON") -> None:
    """Refuse decoded data nested deeper than ``limit`` (iteratively: no RecursionError)."""
    from gpuctk.errors import GpuctkError

    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: object = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            raise GpuctkError(f"{name}: invalid {kind}: nested too deeply (more than {limit} levels)")
        stack.extend((child, depth + 1) for child in children)  # type: ignore[attr-defined]


def decode_json(text: str, name: str, *, depth: int = MAX_DEPTH) -> object:
    """JSON text to data with one-line errors: syntax (line/column), nesting deeper than
    ``depth``, integers with more than MAX_INT_DIGITS digits, lone surrogate escapes."""
    import json

    from gpuctk.errors import GpuctkError

    def big_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise GpuctkError(
                f"{name}: invalid JSON: integer with {len(s)} digits (at most {MAX_INT_DIGITS})"
            )
        return int(s)

    try:
        data = json.loads(text, parse_int=big_int)
    except json.JSONDecodeError as exc:
        error = GpuctkError(f"{name}: invalid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}")
        error.syntax = True  # type: ignore[attr-defined]
        raise error from None
    except RecursionError:
        raise GpuctkError(f"{name}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # CPython's int digit limit, float overflow
        raise GpuctkError(f"{name}: invalid JSON: {exc}") from None
    check_depth(data, name, depth)
    _check_strings(data, name)
    return data


def _check_strings(value: object, name: str) -> None:
    """Refuse strings that cannot be written back as UTF-8 (a ``"\\ud800"`` escape decodes to a
    lone surrogate, which fails only later, at the write)."""
    from gpuctk.errors import GpuctkError

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                raise GpuctkError(
                    f"{name}: invalid JSON: string {escape_controls(item)[:60]!s} is a lone surrogate, not UTF-8"
                )
        elif isinstance(item, dict):
            for k, v in item.items():
                stack.append(k)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


# TOML shape caps, checked on the raw text before any parser runs: tomlkit is quadratic in the
# keys of one table (25 s for 5000 keys), tomllib in the parts of dotted table headers.
MAX_TOML_KEYS = 4000
MAX_TOML_TABLES = 500
MAX_TOML_HEADER_PARTS = 32


def check_toml_shape(text: str, name: str) -> None:
    """One-line GpuctkError for TOML no config file looks like (an engine config or the
    toolkit's config.toml): more than MAX_TOML_KEYS lines that hold a key or a table header,
    more than MAX_TOML_TABLES table headers, a table header or dotted key with more than
    MAX_TOML_HEADER_PARTS dotted parts (tomllib's time grows with their square: a 40 KB key of
    20 000 parts takes seconds), or nesting deeper than MAX_DEPTH brackets."""
    from gpuctk.errors import GpuctkError

    keys = tables = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.lstrip()
        if not s or s[0] == "#":
            continue
        if s[0] == "[":
            keys += 1
            tables += 1
            if tables > MAX_TOML_TABLES:
                raise GpuctkError(f"{name}: more than {MAX_TOML_TABLES} tables, not a config file")
            head = s.split("]", 1)[0]
            if head.count(".") >= MAX_TOML_HEADER_PARTS:
                raise GpuctkError(
                    f"{name}: line {lineno}: table header with more than {MAX_TOML_HEADER_PARTS} parts, "
                    "not a config file"
                )
        elif "=" in s:
            keys += 1
            if s.split("=", 1)[0].count(".") >= MAX_TOML_HEADER_PARTS:
                raise GpuctkError(
                    f"{name}: line {lineno}: dotted key with more than {MAX_TOML_HEADER_PARTS} parts, "
                    "not a config file"
                )
        if keys > MAX_TOML_KEYS:
            raise GpuctkError(f"{name}: more than {MAX_TOML_KEYS} keys and tables, not a config file")
    depth = deepest = 0
    if text.count("[") + text.count("{") > MAX_DEPTH:
        for ch in text:
            if ch in "[{":
                depth += 1
                if depth > deepest:
                    deepest = depth
                    if deepest > MAX_DEPTH:
                        raise GpuctkError(
                            f"{name}: invalid TOML: nested too deeply (more than {MAX_DEPTH} levels)"
                        )
            elif ch in "]}":
                depth = max(0, depth - 1)


def copy_atomic(src: str, dst: str) -> None:
    """Copy regular file ``src`` to ``dst`` atomically with its mode (a backup is either
    complete or absent, never empty or truncated)."""
    data = read_regular(src)
    atomic_write(dst, data, stat.S_IMODE(os.stat(src).st_mode))
