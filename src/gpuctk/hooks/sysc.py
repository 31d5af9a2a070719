"""The few Linux system calls the hooks need that Python 3.11 lacks (ctypes, stdlib only)."""

from __future__ import annotations

import ctypes
import os

from gpuctk.hooks.confine import libc

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# pivot_root has no glibc wrapper
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _check(
        libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}",
    )


def umount2(target: str, flags: int) -> None:
    _check(libc().umount2(os.fsencode(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    fn = libc().syscall
    fn.restype = ctypes.c_long
    _check(int(fn(ctypes.c_long(nr), os.fsencode(new_root), os.fsencode(put_old))), "pivot_root")


# ---------------------------------------------------------------- capabilities
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def limit_capabilities(keep: set[int], last: int) -> None:
    """Shrink the bounding and inheritable sets to ``keep`` and clear the ambient set, so the
    next exec'd program gets at most ``keep``; also set no_new_privs."""
    lib = libc()
    for cap in range(last + 1):
        if cap not in keep:
            lib.prctl(
                ctypes.c_int(PR_CAPBSET_DROP),
                ctypes.c_ulong(cap),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )  # EINVAL for caps the kernel lacks: fine
    lib.prctl(
        ctypes.c_int(PR_CAP_AMBIENT),
        ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(lib.capget(ctypes.byref(hdr), data), "capget")
    mask = [0, 0]
    for cap in keep:
        mask[cap // 32] |= 1 << (cap % 32)
    for i in range(2):
        data[i].inheritable &= mask[i]
    _check(lib.capset(ctypes.byref(hdr), data), "capset")
    _check(
        lib.prctl(
            ctypes.c_int(PR_SET_NO_NEW_PRIVS),
            ctypes.c_ulong(1),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl(NO_NEW_PRIVS)",
    )


def die_with_parent(sig: int = 9) -> None:
    """Ask the kernel to send ``sig`` (SIGKILL) when our parent dies: a killed hook must not
    leave a child running inside the container root. Kept across a plain execve."""
    _check(
        libc().prctl(
            ctypes.c_int(PR_SET_PDEATHSIG),
            ctypes.c_ulong(sig),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl(PDEATHSIG)",
    )
