"""gpuctk.hooks._libc: the hooks' libc calls without `import ctypes`, checked against the
kernel's own answers and against the ctypes implementation it stands in for."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuctk.hooks import _libc
from gpuctk.hooks.confine import fs_type, mount_id, openat2_available
from gpuctk.hooks.params import masked_params

IMPLS = {"_ctypes": _libc._from_underscore_ctypes, "ctypes": _libc._from_ctypes}


@pytest.fixture(params=sorted(IMPLS))
def lib(request: pytest.FixtureRequest) -> _libc._Impl:
    impl = IMPLS[request.param]()
    assert impl.kind == request.param
    return impl


def test_int_results_and_errno(lib: _libc._Impl) -> None:
    assert lib.getpid() == os.getpid()
    assert lib.syscall(39 if os.uname().machine == "x86_64" else 172) == os.getpid()  # SYS_getpid
    assert lib.close(lib.c_int(-1)) == -1
    assert lib.get_errno() == errno.EBADF


def test_long_result_keeps_the_high_bits(lib: _libc._Impl, tmp_path: Path) -> None:
    # lseek returns off_t: a long; an int result type would truncate 2**33
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pos = int(lib.function("lseek", long_result=True)(lib.c_int(fd), lib.c_long(2**33), lib.c_int(0)))
    finally:
        os.close(fd)
    assert pos == 2**33


def test_buffers_are_out_parameters(lib: _libc._Impl) -> None:
    fd = os.open("/proc", os.O_PATH)
    try:
        buf = lib.buffer(256)
        assert lib.fstatfs(lib.c_int(fd), buf) == 0
        assert _libc.u64(bytes(buf), 0) == 0x9FA0  # PROC_SUPER_MAGIC
    finally:
        os.close(fd)
    b = lib.buffer(8)
    b[:] = (0x0102030405060708).to_bytes(8, sys.byteorder)
    assert _libc.u64(bytes(b), 0) == 0x0102030405060708
    assert _libc.u32(bytes(b), 4) == (0x01020304 if sys.byteorder == "little" else 0x05060708)


def test_unknown_function_is_an_attribute_error(lib: _libc._Impl) -> None:
    with pytest.raises(AttributeError):
        lib.function("gpuctk_no_such_function")
    with pytest.raises(AttributeError):
        lib._private  # noqa: B018


def test_the_process_uses_underscore_ctypes_and_the_confinement_answers_agree() -> None:
    assert _libc.libc().kind == "_ctypes"
    fd = os.open("/proc/self", os.O_PATH | os.O_DIRECTORY)
    try:
        assert fs_type(fd) == 0x9FA0
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            fdinfo = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        assert mount_id(fd) == int(fdinfo[b"mnt_id"])
    finally:
        os.close(fd)
    assert openat2_available() in (True, False)


def test_a_hook_process_imports_neither_ctypes_nor_re() -> None:
    code = (
        "import sys; from gpuctk.hooks.confine import Root, fs_type; import gpuctk.hooks.sysc, "
        "gpuctk.hooks.params; fs_type(0); print(sorted({'ctypes', 're'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_fallback_when_underscore_ctypes_lacks_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import _ctypes

    monkeypatch.delattr(_ctypes, "FUNCFLAG_USE_ERRNO")
    monkeypatch.setattr(_libc, "_impl", None)
    assert _libc.libc().kind == "ctypes"
    assert _libc.libc().getpid() == os.getpid()
    monkeypatch.setattr(_libc, "_impl", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ModifyDeviceFiles: 1\n", "ModifyDeviceFiles: 0\n"),
        ("ModifyDeviceFiles: 1", "ModifyDeviceFiles: 0"),
        (
            "EnableMSI: 1\nModifyDeviceFiles: 1\nDeviceFileUID: 0\n",
            "EnableMSI: 1\nModifyDeviceFiles: 0\nDeviceFileUID: 0\n",
        ),
        ("ModifyDeviceFiles:1\n", "ModifyDeviceFiles: 0\n"),
        ("ModifyDeviceFiles: \t12 \t\nX: 1\n", "ModifyDeviceFiles: 0\nX: 1\n"),
        ("ModifyDeviceFiles: 00\n", "ModifyDeviceFiles: 0\n"),
        ("ModifyDeviceFiles: 1\r\nA: 2\r\n", "ModifyDeviceFiles: 0\nA: 2\r\n"),
        # the regex `\s*$` under re.M swallowed a following blank line's newline: kept now
        ("ModifyDeviceFiles: 1\n\nX: 1\n", "ModifyDeviceFiles: 0\n\nX: 1\n"),
        # the first ModifyDeviceFiles line with a number decides
        ("ModifyDeviceFiles: 0\nModifyDeviceFiles: 1\n", None),
        ("ModifyDeviceFiles: x\nModifyDeviceFiles: 1\n", "ModifyDeviceFiles: x\nModifyDeviceFiles: 0\n"),
        ("ModifyDeviceFiles: 0\n", None),
        (" ModifyDeviceFiles: 1\n", None),
        ("XModifyDeviceFiles: 1\n", None),
        ("ModifyDeviceFiles: 1 2\n", None),
        ("ModifyDeviceFiles: -1\n", None),
        ("ModifyDeviceFiles: \u0661\n", None),  # an Arabic-Indic digit is not a number here
        ("", None),
    ],
)
def test_masked_params(text: str, expected: str | None) -> None:
    assert masked_params(text) == expected
