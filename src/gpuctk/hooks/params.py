"""``disable-device-node-modification``: hide ``ModifyDeviceFiles: 1`` from the container
(upstream: NVIDIA/nvidia-container-toolkit
``cmd/nvidia-cdi-hook/disable-device-node-modification/``).

With the host's ``/proc/driver/nvidia/params`` saying 1, NVML in the container creates
``/dev/nvidia<N>`` nodes for GPUs it was not given. We bind a read-only copy saying 0 over
the container's params file. The copy lives on a private tmpfs that is made read-only
(superblock-wide) before the bind, so nothing in the container can change it.

The tmpfs is created detached (``fsopen``/``fsmount``, Linux >= 5.2) and the file bound
with ``open_tree``/``move_mount``: no staging directory ever exists on the host, so a hook
killed at any point leaves nothing behind. (Older kernels: a 0700 staging directory under
``/tmp``, mounted, bound from and removed within milliseconds.)

The host file comes from ``--host-params-file`` (argv, from the spec) or the fixed
default, never from the environment; it must be a regular file (procfs files are) and is
read non-blocking and bounded.
"""

from __future__ import annotations

import errno
import os

from gpuctk.errors import GpuctkError
from gpuctk.hooks._libc import libc
from gpuctk.hooks.confine import Root, fd_path, private_dir

PARAMS_PATH = "/proc/driver/nvidia/params"
PARAMS_LIMIT = 64 << 10  # the real file is under 1 KiB

_KEY = "ModifyDeviceFiles:"
_BLANKS = " \t\v\f\r"
_DIGITS = frozenset("0123456789")


def masked_params(text: str) -> str | None:
    """The params text with ``ModifyDeviceFiles: 0``, or None when nothing needs changing.

    The first line reading ``ModifyDeviceFiles:`` then a decimal number (blanks around it
    allowed) decides: a value of ``0`` needs nothing, any other is replaced, the rest of the
    text is kept byte for byte. (Line by line, without ``re``: a hook's imports are on the
    container's start path.)"""
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if body.startswith(_KEY):
            value = body[len(_KEY) :].strip(_BLANKS)
            if value and _DIGITS.issuperset(value):
                if value == "0":
                    return None
                return text[:pos] + "ModifyDeviceFiles: 0" + line[len(body) :] + text[pos + len(line) :]
        pos += len(line)
    return None


def host_params_path(option: str | None) -> str:
    return option or PARAMS_PATH


def read_host_params(path: str) -> str | None:
    """The host params text; None when the file does not exist (no NVIDIA driver)."""
    from gpuctk.hooks.hostio import read_host_file

    if "\0" in path:
        raise GpuctkError(f"--host-params-file {path!r}: NUL byte in path")
    if not os.path.lexists(path):
        return None
    return read_host_file(path, PARAMS_LIMIT, "host params file").decode(errors="replace")


# ------------------------------------------------------------------ the new mount API (syscalls)
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 428, 429, 430, 431, 432
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE, _FSCONFIG_CMD_RECONFIGURE = 0, 1, 6, 7
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV, _MOUNT_ATTR_NOEXEC = 2, 4, 8
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
_MOVE_MOUNT_F_EMPTY_PATH, _MOVE_MOUNT_T_EMPTY_PATH = 4, 0x40


def _sys(nr: int, *args: object, what: str) -> int:
    lib = libc()
    ret = lib.syscall(nr, *args)
    if ret < 0:
        err = lib.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _bind_detached(masked: str, target: int) -> None:
    """Bind a read-only file holding ``masked`` over ``target`` (an O_PATH fd) with no host path."""
    lib = libc()
    u, i = lib.c_uint, lib.c_int
    # (C strings cross as bytes: char *)
    fs = _sys(_SYS_FSOPEN, b"tmpfs", u(1), what="fsopen")  # FSOPEN_CLOEXEC
    fds = [fs]
    try:
        for key, value in ((b"size", b"64k"), (b"mode", b"0755")):
            _sys(_SYS_FSCONFIG, i(fs), u(_FSCONFIG_SET_STRING), key, value, i(0), what="fsconfig")
        _sys(_SYS_FSCONFIG, i(fs), u(_FSCONFIG_CMD_CREATE), None, None, i(0), what="fsconfig create")
        attrs = _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOEXEC
        mnt = _sys(_SYS_FSMOUNT, i(fs), u(1), u(attrs), what="fsmount")  # FSMOUNT_CLOEXEC
        fds.append(mnt)
        fd = os.open("nvct-params", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444, dir_fd=mnt)
        try:
            os.write(fd, masked.encode())
        finally:
            os.close(fd)
        # read-only superblock: no bind flag inside the container can make it writable
        _sys(_SYS_FSCONFIG, i(fs), u(_FSCONFIG_SET_FLAG), b"ro", None, i(0), what="fsconfig ro")
        _sys(
            _SYS_FSCONFIG, i(fs), u(_FSCONFIG_CMD_RECONFIGURE), None, None, i(0), what="fsconfig reconfigure"
        )
        tree = _sys(
            _SYS_OPEN_TREE,
            i(mnt),
            b"nvct-params",
            u(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC),
            what="open_tree",
        )
        fds.append(tree)
        flags = _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH
        _sys(_SYS_MOVE_MOUNT, i(tree), b"", i(target), b"", u(flags), what="move_mount")
    finally:
        for fd in fds:
            os.close(fd)


def _bind_staged(masked: str, target: int) -> None:
    """Kernels without the new mount API: a staging dir, removed right after the bind."""
    from gpuctk.hooks import sysc

    staging = private_dir("gpuctk-params-")
    mounted = False
    try:
        sysc.mount(
            "tmpfs", staging, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC, "size=64k,mode=0755"
        )
        mounted = True
        src = os.path.join(staging, "nvct-params")
        with open(src, "w") as f:
            f.write(masked)
        os.chmod(src, 0o444)
        sysc.mount(
            None,
            staging,
            None,
            sysc.MS_REMOUNT | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC,
        )
        src_fd = os.open(src, os.O_PATH | os.O_CLOEXEC)
        try:
            sysc.mount(fd_path(src_fd), fd_path(target), None, sysc.MS_BIND)
        finally:
            os.close(src_fd)
    finally:
        if mounted:
            try:
                sysc.umount2(staging, sysc.MNT_DETACH)
            except OSError:
                pass
        try:
            os.rmdir(staging)
        except OSError:
            pass


def disable_device_node_modification(root: Root, host_params: str | None = None) -> bool:
    """Returns True when the mask was mounted; False for a no-op (no file, or already 0)."""
    path = host_params_path(host_params)
    text = read_host_params(path)
    if text is None:
        return False
    masked = masked_params(text)
    if masked is None:
        return False
    try:
        target = root.mount_target(PARAMS_PATH, want_dir=False)
    except FileNotFoundError:
        return False  # the container has no NVIDIA procfs entry to mask
    try:
        try:
            _bind_detached(masked, target)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            _bind_staged(masked, target)
    finally:
        os.close(target)
    return True
