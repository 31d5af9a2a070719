"""``disable-device-node-modification``: hide ``ModifyDeviceFiles: 1`` from the container.

With the host's ``/proc/driver/nvidia/params`` saying 1, NVML in the container creates
``/dev/nvidia<N>`` nodes for GPUs it was not given. We bind a read-only copy saying 0 over
the container's params file. The copy lives on a private tmpfs that is remounted
read-only (superblock-wide) before the bind, so nothing in the container can change it;
the staging tmpfs is then detached, leaving only the file bind.
"""

from __future__ import annotations

import os
import re

from gpuctk.errors import GpuctkError
from gpuctk.hooks import sysc
from gpuctk.hooks.confine import Root, fd_path, private_dir

PARAMS_PATH = "/proc/driver/nvidia/params"
# tests and simulated nodes point the hook at a fake host file
HOST_PARAMS_ENV = "GPUCTK_HOST_NVIDIA_PARAMS"

_MODIFY_RE = re.compile(r"^ModifyDeviceFiles:\s*(\d+)\s*$", re.M)


def masked_params(text: str) -> str | None:
    """The params text with ``ModifyDeviceFiles: 0``, or None when nothing needs changing."""
    m = _MODIFY_RE.search(text)
    if m is None or m.group(1) == "0":
        return None
    return text[: m.start()] + "ModifyDeviceFiles: 0" + text[m.end() :]


def host_params_path(option: str | None) -> str:
    return option or os.environ.get(HOST_PARAMS_ENV) or PARAMS_PATH


def disable_device_node_modification(root: Root, host_params: str | None = None) -> bool:
    """Returns True when the mask was mounted; False for a no-op (no file, or already 0)."""
    path = host_params_path(host_params)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise GpuctkError(f"{path}: {exc.strerror}") from None
    masked = masked_params(text)
    if masked is None:
        return False
    try:
        target = root.mount_target(PARAMS_PATH, want_dir=False)
    except FileNotFoundError:
        return False  # the container has no NVIDIA procfs entry to mask
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
        os.close(target)
        if mounted:
            try:
                sysc.umount2(staging, sysc.MNT_DETACH)
            except OSError:
                pass
        try:
            os.rmdir(staging)
        except OSError:
            pass
    return True
