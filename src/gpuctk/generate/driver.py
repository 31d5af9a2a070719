"""Driver files of a node as CDI edits: libraries and their symlinks, firmware,
binaries, IPC sockets and graphics files (NVIDIA/nvidia-container-toolkit ``internal/lookup/root/root.go``,
``pkg/nvcdi/driver-nvml.go``, ``internal/discover/graphics.go``)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from gpuctk.discover.elf import read_soname
from gpuctk.discover.rootfs import DRIVER_BINARIES, DriverRoot

RO_OPTIONS = ["ro", "nosuid", "nodev", "rbind", "rprivate"]
IPC_OPTIONS = ["nosuid", "nodev", "rbind", "rprivate", "noexec"]
EXPLICIT_LIBS = (
    "libEGL.so",
    "libGL.so",
    "libGLESv1_CM.so",
    "libGLESv2.so",
    "libGLX.so",
    "libGLdispatch.so",
    "libOpenCL.so",
    "libOpenGL.so",
    "libnvidia-api.so",
    "libnvidia-egl-xcb.so",
    "libnvidia-egl-xlib.so",
)
SHARE_CONFIGS = (
    "glvnd/egl_vendor.d/10_nvidia.json",
    "egl/egl_external_platform.d/15_nvidia_gbm.json",
    "egl/egl_external_platform.d/10_nvidia_wayland.json",
    "egl/egl_external_platform.d/09_nvidia_wayland2.json",
    "egl/egl_external_platform.d/20_nvidia_xcb.json",
    "egl/egl_external_platform.d/20_nvidia_xlib.json",
    "nvidia/nvoptix.bin",
    "X11/xorg.conf.d/10-nvidia.conf",
    "X11/xorg.conf.d/nvidia-drm-outputclass.conf",
)
ETC_CONFIGS = (
    "OpenCL/vendors/nvidia.icd",
    "vulkan/icd.d/nvidia_icd.json",
    "vulkan/icd.d/nvidia_layers.json",
    "vulkan/implicit_layer.d/nvidia_layers.json",
    "vulkan/icd.d/nvidia_icd.{arch}.json",
)


@dataclass
class DriverEdits:
    lib_dirs: list[str] = field(default_factory=list)  # container paths
    mounts: list[dict[str, Any]] = field(default_factory=list)
    lib_links: list[str] = field(default_factory=list)
    graphics_links: list[str] = field(default_factory=list)
    ldcache_folders: list[str] = field(default_factory=list)


def mount(
    root: DriverRoot, host_path: str, container_path: str | None = None, options: list[str] | None = None
) -> dict[str, Any]:
    return {
        "hostPath": host_path,
        "containerPath": container_path or root.container(host_path),
        "options": list(options or RO_OPTIONS),
    }


def _so_links(root: DriverRoot, host_lib: str) -> list[str]:
    """SONAME and ``.so`` development links for one library that exist on the host."""
    links = []
    name = os.path.basename(host_lib)
    cdir = os.path.dirname(root.container(host_lib))
    soname = read_soname(host_lib)
    if soname and ("/" in soname or soname in (".", "..")):
        soname = None  # a SONAME is a file name; anything else is not ours to link
    if soname and soname != name and os.path.islink(os.path.join(os.path.dirname(host_lib), soname)):
        links.append(f"{name}::{cdir}/{soname}")
    if soname and ".so" in name:
        dev = name[: name.index(".so") + 3]
        if dev not in (soname, name) and os.path.islink(os.path.join(os.path.dirname(host_lib), dev)):
            links.append(f"{soname}::{cdir}/{dev}")
    return links


def discover_driver(
    root: DriverRoot,
    version: str,
    *,
    graphics: bool,
    ipc: bool,
    explicit_libs: bool = False,
    arch: str | None = None,
) -> DriverEdits:
    out = DriverEdits()
    arch = arch or os.uname().machine
    anchors = root.locate_libraries(f"libcuda.so.{version}") + root.locate_libraries(
        f"libnvidia-ml.so.{version}"
    )
    host_dirs = list(dict.fromkeys(os.path.dirname(a) for a in anchors))
    out.lib_dirs = [root.container(d) for d in host_dirs]
    libs: list[str] = []
    for d in host_dirs:
        for pattern in (f"lib*.so.{version}", f"vdpau/lib*.so.{version}", "libnvidia-nvvm70.so.*"):
            for hit in sorted(glob.glob(os.path.join(d, pattern))):
                if os.path.isfile(hit) and not os.path.islink(hit) and hit not in libs:
                    libs.append(hit)
        if explicit_libs:
            for name in EXPLICIT_LIBS:
                for explicit in sorted(glob.glob(os.path.join(d, name + ".*"))):
                    resolved = root.resolve(explicit)
                    if resolved and resolved not in libs:
                        libs.append(resolved)

    gfx_libs: list[str] = []
    if graphics:
        for pattern in (
            "libnvidia-egl-gbm.so.*.*",
            "libnvidia-egl-wayland.so.*.*",
            "libnvidia-egl-wayland2.so.*.*",
            "libnvidia-egl-xcb.so.*.*",
            "libnvidia-egl-xlib.so.*.*",
            f"libnvidia-vulkan-producer.so.{version}",
        ):
            for hit in root.locate_libraries(pattern):
                if hit not in libs and hit not in gfx_libs:
                    gfx_libs.append(hit)
    for lib in libs + gfx_libs:
        out.mounts.append(mount(root, lib))

    # library symlinks: fixed ones first, then SONAME/.so links per library
    for lib in libs:
        name, cdir = os.path.basename(lib), os.path.dirname(root.container(lib))
        if name.startswith("libcuda.so.") and name.count(".") >= 3:
            out.lib_links.append(f"libcuda.so.1::{cdir}/libcuda.so")
        if name.startswith("libGLX_nvidia.so."):
            out.lib_links.append(f"{name}::{cdir}/libGLX_indirect.so.0")
        if name.startswith("libnvidia-opticalflow.so."):
            out.lib_links.append(f"libnvidia-opticalflow.so.1::{cdir}/libnvidia-opticalflow.so")
    for lib in libs + gfx_libs:
        out.lib_links.extend(_so_links(root, lib))
    out.lib_links = list(dict.fromkeys(out.lib_links))

    if graphics:
        _graphics(root, version, out, host_dirs, arch)

    for fw in root.firmware(version):
        out.mounts.append(mount(root, fw))
    for binary in DRIVER_BINARIES:
        found = root.locate_binary(binary)
        if found:
            out.mounts.append(mount(root, found))
    if ipc:
        for sock in root.ipc_sockets():
            out.mounts.append(mount(root, sock, options=IPC_OPTIONS))
    for m in out.mounts:
        base = os.path.basename(m["containerPath"])
        if base.startswith("lib") and ".so" in base:
            out.ldcache_folders.append(os.path.dirname(m["containerPath"]))
    out.ldcache_folders = list(dict.fromkeys(out.ldcache_folders))
    return out


def _graphics(root: DriverRoot, version: str, out: DriverEdits, host_dirs: list[str], arch: str) -> None:
    libdir = root.container(host_dirs[0]) if host_dirs else "/usr/lib/x86_64-linux-gnu"
    if root.locate_libraries(f"libnvidia-allocator.so.{version}"):
        out.graphics_links.append(f"../libnvidia-allocator.so.1::{libdir}/gbm/nvidia-drm_gbm.so")
    for producer in root.locate_libraries(f"libnvidia-vulkan-producer.so.{version}"):
        out.graphics_links.append(
            f"{os.path.basename(producer)}::{os.path.dirname(root.container(producer))}"
            "/libnvidia-vulkan-producer.so"
        )
    xorg_dirs = [
        f"{libdir}/nvidia/xorg",
        f"{libdir}/xorg/modules",
        "/usr/lib/xorg/modules",
        "/usr/lib64/xorg/modules",
        "/usr/X11R6/lib/modules",
        "/usr/X11R6/lib64/modules",
    ]
    for name, subdirs in (
        ("nvidia_drv.so", ("", "/drivers", "/updates/drivers")),
        (f"libglxserver_nvidia.so.{version}", ("", "/extensions", "/updates/extensions")),
    ):
        module = root.locate_file([d + s + "/" + name for d in xorg_dirs for s in subdirs])
        if module:
            out.mounts.append(mount(root, module))
            if name.startswith("libglxserver"):
                out.graphics_links.append(
                    f"{name}::{os.path.dirname(root.container(module))}/libglxserver_nvidia.so"
                )
    xconfig = root.locate_binary("nvidia-xconfig")
    if xconfig:
        out.mounts.append(mount(root, xconfig))
    xdg = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    search = ["/etc", *[d for d in xdg.split(":") if d]]
    for rel in SHARE_CONFIGS:
        config = root.locate_file([f"{d}/{rel}" for d in search])
        if config:
            out.mounts.append(mount(root, config, f"/usr/share/{rel}"))
    for rel in ETC_CONFIGS:
        rel = rel.format(arch=arch)
        etc_config = root.locate_file([f"{d}/{rel}" for d in search] + [f"/{rel}"])
        if etc_config:
            out.mounts.append(mount(root, etc_config, f"/etc/{rel}"))
