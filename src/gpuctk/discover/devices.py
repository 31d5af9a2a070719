"""Device nodes: one replaceable stat function and the NVIDIA node layout.

``stat_device(path)`` returns a :class:`NodeStat` for a character device or None. The
default accepts real character device nodes only. Simulated nodes laid out without mknod
(descriptor files) are understood only after the simulator installs its own stat function
(:func:`gpuctk.sim.devstat.use_descriptor_devices`, ``cdi generate --simulated-devices``),
as upstream's tests override theirs; :func:`set_stat_device` swaps it.
"""

from __future__ import annotations

import os
import stat as _stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeStat:
    major: int
    minor: int
    mode: int  # permission bits only
    gid: int


def default_stat_device(path: str) -> NodeStat | None:
    """A real character device node (symlinks followed), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if _stat.S_ISCHR(st.st_mode):
        return NodeStat(os.major(st.st_rdev), os.minor(st.st_rdev), _stat.S_IMODE(st.st_mode), st.st_gid)
    return None


_stat_impl: Callable[[str], NodeStat | None] = default_stat_device


def stat_device(path: str) -> NodeStat | None:
    """Stat a (host) device node path; None when it is not a character device."""
    return _stat_impl(path)


def set_stat_device(fn: Callable[[str], NodeStat | None] | None) -> Callable[[str], NodeStat | None]:
    """Replace the stat function (None restores the default); returns the previous one."""
    global _stat_impl
    prev = _stat_impl
    _stat_impl = fn or default_stat_device
    return prev


def host_path(dev_root: str, path: str) -> str:
    """``path`` under dev_root; ``..`` cannot climb out of the root."""
    clean = os.path.normpath("/" + path.lstrip("/"))
    return os.path.join(dev_root, clean.lstrip("/")) if dev_root not in ("", "/") else clean


def device_node_edit(
    dev_root: str, path: str, *, additional_gids: bool = True
) -> tuple[dict[str, Any], list[int]]:
    """The CDI deviceNode for container ``path`` (host node under dev_root), plus the
    additional GIDs the container needs to open it (gid != 0 and not world rw)."""
    hp = host_path(dev_root, path)
    node: dict[str, Any] = {"path": path}
    if hp != path:
        node["hostPath"] = hp
    st = stat_device(hp)
    gids: list[int] = []
    if st is None:
        return node, gids
    node.update({"major": st.major, "minor": st.minor})
    if st.mode:
        node["fileMode"] = st.mode
    node["permissions"] = "rwm"
    if st.gid:
        node["gid"] = st.gid
        if additional_gids and (st.mode & 0o006) != 0o006:
            gids.append(st.gid)
    return node, gids


CONTROL_NODES = ("/dev/nvidia-modeset", "/dev/nvidia-uvm-tools", "/dev/nvidia-uvm", "/dev/nvidiactl")


def existing_nodes(dev_root: str, paths: list[str] | tuple[str, ...]) -> list[str]:
    return [p for p in paths if stat_device(host_path(dev_root, p)) is not None]


def glob_nodes(dev_root: str, patterns: list[str]) -> list[str]:
    """Container paths of character devices matching glob ``patterns`` under dev_root."""
    import glob

    out: list[str] = []
    for pat in patterns:
        for hp in sorted(glob.glob(host_path(dev_root, pat))):
            cp = "/" + os.path.relpath(hp, dev_root) if dev_root not in ("", "/") else hp
            if cp not in out and stat_device(hp) is not None:
                out.append(cp)
    return out


def drm_nodes(dev_root: str, pci_bus_id: str | None) -> list[str]:
    """``/dev/dri/<name>`` nodes of a GPU, from ``/sys/bus/pci/devices/<bus>/drm``."""
    if not pci_bus_id:
        return []
    drm = host_path(dev_root, f"/sys/bus/pci/devices/{pci_bus_id.lower()}/drm")
    try:
        names = sorted(os.listdir(drm))
    except OSError:
        return []
    return [
        f"/dev/dri/{n}"
        for n in names
        if n.startswith(("card", "renderD")) and stat_device(host_path(dev_root, f"/dev/dri/{n}")) is not None
    ]


def by_path_links(dev_root: str, pci_bus_id: str | None, nodes: list[str]) -> list[str]:
    """``--link`` args recreating /dev/dri/by-path links that point at one of ``nodes``."""
    if not pci_bus_id:
        return []
    out = []
    for kind in ("card", "render"):
        link = f"/dev/dri/by-path/pci-{pci_bus_id.lower()}-{kind}"
        try:
            target = os.readlink(host_path(dev_root, link))
        except OSError:
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
        if resolved in nodes:
            out.append(f"{target}::{link}")
    return out
