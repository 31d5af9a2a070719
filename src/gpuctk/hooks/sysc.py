"""The few Linux system calls the hooks need that Python 3.11 lacks (through
:mod:`gpuctk.hooks._libc`; stdlib only)."""

from __future__ import annotations

import os
import sys

from gpuctk.hooks._libc import libc, u32

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
        err = libc().get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    lib = libc()
    _check(lib.unshare(lib.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    lib = libc()
    _check(lib.mount(enc(source), enc(target), enc(fstype), lib.c_ulong(flags), enc(data)), f"mount {target}")


def umount2(target: str, flags: int) -> None:
    lib = libc()
    _check(lib.umount2(os.fsencode(target), lib.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    _check(libc().syscall(nr, os.fsencode(new_root), os.fsencode(put_old)), "pivot_root")


# ---------------------------------------------------------------- capabilities
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


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

    def prctl(option: int, arg: int) -> int:
        return int(
            lib.prctl(lib.c_int(option), lib.c_ulong(arg), lib.c_ulong(0), lib.c_ulong(0), lib.c_ulong(0))
        )

    for cap in range(last + 1):
        if cap not in keep:
            prctl(PR_CAPBSET_DROP, cap)  # EINVAL for caps the kernel lacks: fine
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    # struct __user_cap_header_struct {u32 version; int pid} and two
    # struct __user_cap_data_struct {u32 effective, permitted, inheritable}
    hdr = lib.buffer(8)
    hdr[:] = _LINUX_CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4)
    data = lib.buffer(24)
    _check(lib.capget(hdr, data), "capget")
    mask = [0, 0]
    for cap in keep:
        mask[cap // 32] |= 1 << (cap % 32)
    raw = bytearray(bytes(data))
    for i in range(2):
        off = 12 * i + 8  # inheritable
        raw[off : off + 4] = (u32(bytes(raw), off) & mask[i]).to_bytes(4, sys.byteorder)
    data[:] = bytes(raw)
    _check(lib.capset(hdr, data), "capset")
    _check(prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(NO_NEW_PRIVS)")


def die_with_parent(sig: int = 9) -> None:
    """Ask the kernel to send ``sig`` (SIGKILL) when our parent dies: a killed hook must not
    leave a child running inside the container root. Kept across a plain execve."""
    lib = libc()
    _check(
        lib.prctl(
            lib.c_int(PR_SET_PDEATHSIG), lib.c_ulong(sig), lib.c_ulong(0), lib.c_ulong(0), lib.c_ulong(0)
        ),
        "prctl(PDEATHSIG)",
    )
