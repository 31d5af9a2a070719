"""JSON for the runtime's create path and the hooks, without importing :mod:`json`.

``import json`` pulls in ``re`` (and through it ``enum``, ``functools``, ``collections``):
5 to 10 ms of a container start on a small machine, more than the rest of the shim's
work. The parsing and encoding themselves are done by CPython's ``_json`` C accelerator
in both cases; this module drives it directly, with the same settings as
``json.loads``/``json.dumps``, so the results are the same objects and the same text.

Anything unusual (a byte-order mark or a UTF-16/32 document, a parse error whose message
must be exactly the stdlib's, a Python without ``_json``) goes to the real :mod:`json`
module, so behaviour never differs from it; only the common path is faster.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_c: Any
try:
    import _json as _c  # the C accelerator json itself uses
except ImportError:  # pragma: no cover - CPython always has it
    _c = None

_INF = float("inf")
_CONSTANTS = {"-Infinity": -_INF, "Infinity": _INF, "NaN": _INF - _INF}
_WS = " \t\n\r"


class _Context:
    """The attributes ``_json.make_scanner`` reads (what a ``json.JSONDecoder`` holds)."""

    __slots__ = ("object_hook", "object_pairs_hook", "parse_constant", "parse_float", "parse_int", "strict")

    def __init__(
        self, object_pairs_hook: Callable[..., Any] | None, parse_constant: Callable[[str], Any] | None
    ):
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__


_default_scanner: Callable[[str, int], tuple[Any, int]] | None = None


def _slow_loads(
    data: str | bytes,
    object_pairs_hook: Callable[..., Any] | None,
    parse_constant: Callable[[str], Any] | None,
) -> Any:
    import json

    return json.loads(data, object_pairs_hook=object_pairs_hook, parse_constant=parse_constant)


def loads(
    data: str | bytes,
    *,
    object_pairs_hook: Callable[..., Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads(data, object_pairs_hook=…, parse_constant=…)``: same result, same errors."""
    global _default_scanner
    if _c is None:
        return _slow_loads(data, object_pairs_hook, parse_constant)
    if isinstance(data, (bytes, bytearray)):
        # json.loads sniffs UTF-16/32 from NUL bytes and BOMs; plain UTF-8 is the rule
        head = bytes(data[:4])
        if b"\x00" in head or head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
            return _slow_loads(data, object_pairs_hook, parse_constant)
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return _slow_loads(data, object_pairs_hook, parse_constant)
    elif isinstance(data, str):
        text = data
    else:
        return _slow_loads(data, object_pairs_hook, parse_constant)  # its TypeError
    try:
        if object_pairs_hook is None and parse_constant is None:
            if _default_scanner is None:
                _default_scanner = _c.make_scanner(_Context(None, None))
            scan = _default_scanner
        else:
            scan = _c.make_scanner(_Context(object_pairs_hook, parse_constant))
    except (TypeError, AttributeError):  # pragma: no cover - a future _json wanting more
        return _slow_loads(data, object_pairs_hook, parse_constant)
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        obj, end = scan(text, i)
    except StopIteration:
        return _slow_loads(data, object_pairs_hook, parse_constant)  # "Expecting value" with position
    except (ValueError, SystemError):
        # A malformed document. The C scanner builds its JSONDecodeError from json.decoder,
        # but on CPython 3.11 only if that module is already in sys.modules: otherwise it
        # fails with SystemError. Either way json itself gives the exact stdlib error.
        return _slow_loads(data, object_pairs_hook, parse_constant)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        return _slow_loads(data, object_pairs_hook, parse_constant)  # "Extra data"
    return obj


def _default(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def dumps(obj: Any, *, separators: tuple[str, str] = (", ", ": "), ensure_ascii: bool = True) -> str:
    """``json.dumps(obj, separators=separators, ensure_ascii=ensure_ascii)`` (no indent)."""
    if _c is None:
        import json

        return json.dumps(obj, separators=separators, ensure_ascii=ensure_ascii)
    encode_str = _c.encode_basestring_ascii if ensure_ascii else _c.encode_basestring
    if isinstance(obj, str):
        return encode_str(obj)
    item_sep, key_sep = separators
    try:  # the positional signature json.encoder uses (3.11+); a future change falls back
        encoder = _c.make_encoder({}, _default, encode_str, None, key_sep, item_sep, False, False, True)
    except TypeError:  # pragma: no cover - depends on the interpreter
        import json

        return json.dumps(obj, separators=separators, ensure_ascii=ensure_ascii)
    return "".join(encoder(obj, 0))
