"""The libc functions the hooks call that Python's ``os`` lacks (openat2, statx, fstatfs,
mount, unshare, prctl, capget/capset), without ``import ctypes``.

A hook is a new process for every container, so its imports are on the container's critical
path. ``import ctypes`` costs about half an interpreter start (its module body builds the whole
C type zoo and checks sizes with ``struct``); the hooks need only a few functions taking ints,
longs and pointers. ``_ctypes``, the C half of ctypes and part of every CPython build with
ctypes, gives those for a fraction: the handful of simple types below, a function-pointer
class that keeps ``errno``, and ``char`` arrays as out-buffers. Should this interpreter's
``_ctypes`` lack any of it, the same names are taken from ``ctypes`` itself (:func:`_from_ctypes`).

Every value crosses as an explicit C type (no argtypes are declared, exactly as the ctypes
code this replaces did); structures are byte buffers packed with ``int.to_bytes``.

Stdlib only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # no `typing` at run time: this module is on the hooks' start path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class _Impl:
    """One implementation: the simple C types, ``errno``, and C functions by name."""

    def __init__(self, kind: str, c_int: Any, c_uint: Any, c_long: Any, c_ulong: Any) -> None:
        self.kind = kind  # "_ctypes" or "ctypes" (tests check both)
        self.c_int = c_int
        self.c_uint = c_uint
        self.c_long = c_long
        self.c_ulong = c_ulong
        self.get_errno: Callable[[], int] = lambda: 0
        self._lookup: Callable[[str, Any], Any] = lambda name, restype: None
        self._new_buffer: Callable[[int], Any] = lambda size: None
        self._functions: dict[tuple[str, bool], Any] = {}

    def function(self, name: str, long_result: bool = False) -> Any:
        """libc's ``name`` (AttributeError when it has none); returns a C ``int``, or a C
        ``long`` with ``long_result`` (``syscall``); ``errno`` is kept for :attr:`get_errno`."""
        key = (name, long_result)
        fn = self._functions.get(key)
        if fn is None:
            fn = self._lookup(name, self.c_long if long_result else self.c_int)
            self._functions[key] = fn
        return fn

    def __getattr__(self, name: str) -> Any:
        # libc().fstatfs(...) style, as with a ctypes.CDLL; names starting "_" are never C
        if name.startswith("_"):
            raise AttributeError(name)
        return self.function(name)

    def syscall(self, nr: int, *args: object) -> int:
        """``syscall(nr, ...)`` (a C long result: -1 with ``errno`` on failure)."""
        return int(self.function("syscall", long_result=True)(self.c_long(nr), *args))

    def buffer(self, size: int) -> Any:
        """A zeroed ``char[size]`` to pass as a pointer; ``bytes(buf)`` reads it back and
        ``buf[i:j] = data`` fills it."""
        return self._new_buffer(size)


def u32(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 4], sys.byteorder)


def u64(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 8], sys.byteorder)


def _from_underscore_ctypes() -> _Impl:
    import _ctypes

    base = _ctypes._SimpleCData

    class c_int(base):  # type: ignore[misc,valid-type]
        _type_ = "i"

    class c_uint(base):  # type: ignore[misc,valid-type]
        _type_ = "I"

    class c_long(base):  # type: ignore[misc,valid-type]
        _type_ = "l"

    class c_ulong(base):  # type: ignore[misc,valid-type]
        _type_ = "L"

    class c_char(base):  # type: ignore[misc,valid-type]
        _type_ = "c"

    flags = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO

    class _Lib:  # what CFuncPtr((name, lib)) looks a symbol up in: dlopen(NULL), as ctypes.CDLL(None)
        _handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]  # NULL: the program itself

    fn_types: dict[Any, type] = {}
    buffers: dict[int, type] = {}

    def lookup(name: str, restype: Any) -> Any:
        cls = fn_types.get(restype)
        if cls is None:
            cls = type("_CFunction", (_ctypes.CFuncPtr,), {"_flags_": flags, "_restype_": restype})
            fn_types[restype] = cls
        return cls((name, _Lib))

    def new_buffer(size: int) -> Any:
        cls = buffers.get(size)
        if cls is None:
            cls = type("_CharArray", (_ctypes.Array,), {"_type_": c_char, "_length_": size})
            buffers[size] = cls
        return cls()

    impl = _Impl("_ctypes", c_int, c_uint, c_long, c_ulong)
    impl.get_errno = _ctypes.get_errno
    impl._lookup = lookup
    impl._new_buffer = new_buffer
    return impl


def _from_ctypes() -> _Impl:
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)

    def lookup(name: str, restype: Any) -> Any:
        fn = getattr(lib, name)
        fn.restype = restype
        return fn

    impl = _Impl("ctypes", ctypes.c_int, ctypes.c_uint, ctypes.c_long, ctypes.c_ulong)
    impl.get_errno = ctypes.get_errno
    impl._lookup = lookup
    impl._new_buffer = ctypes.create_string_buffer
    return impl


_impl: _Impl | None = None


def libc() -> _Impl:
    """The process's one implementation, built on first use."""
    global _impl
    if _impl is None:
        try:
            _impl = _from_underscore_ctypes()
        except (ImportError, AttributeError, TypeError, OSError):
            _impl = _from_ctypes()
    return _impl
