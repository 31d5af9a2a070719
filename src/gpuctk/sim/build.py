"""Materialise a simulated GPU node on disk (the I/O half of gpuctk.sim)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from typing import Any

from gpuctk.sim import profiles as P
from gpuctk.sim.elfwriter import shared_object
from gpuctk.sim.ldcache_writer import build_ldcache
from gpuctk.sim.nvsmi_render import render_script

LDCONFIG = "/usr/sbin/ldconfig"


class Builder:
    def __init__(self, root: str, arch: str, real_devices: bool) -> None:
        self.root = root
        self.arch = arch
        self.real_devices = real_devices
        self.ldcache_entries: list[tuple[str, str]] = []
        self.devices: list[dict[str, Any]] = []
        self.ldconfig_method = ""

    def path(self, p: str) -> str:
        return os.path.join(self.root, p.lstrip("/"))

    def write(self, p: str, data: str | bytes, mode: int = 0o644) -> None:
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(full, mode)

    def symlink(self, p: str, target: str) -> None:
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.lexists(full):
            os.unlink(full)
        os.symlink(target, full)

    def lib(self, libdir: str, name: str, soname: str | None) -> None:
        self.write(f"{libdir}/{name}", shared_object(soname, self.arch))
        base = os.path.basename(name)
        sub = os.path.dirname(name)
        if soname and soname != base:
            self.symlink(f"{libdir}/{sub}/{soname}" if sub else f"{libdir}/{soname}", base)
        if soname and not sub:
            self.ldcache_entries.append((soname, f"{libdir}/{soname}"))

    def chardev(self, p: str, major: int, minor: int, mode: int = 0o666, gid: int = 0) -> None:
        """A real character device when we may mknod, else a JSON descriptor file."""
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.lexists(full):
            os.unlink(full)
        if self.real_devices:
            os.mknod(full, stat.S_IFCHR | mode, os.makedev(major, minor))
            os.chmod(full, mode)
            if gid:
                os.chown(full, 0, gid)
        else:
            from gpuctk.sim.devstat import descriptor

            with open(full, "w") as f:
                f.write(descriptor(major, minor, mode, gid))
        self.devices.append({"path": p, "major": major, "minor": minor, "mode": mode, "gid": gid})

    def unix_socket(self, p: str) -> None:
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if len(full.encode()) >= 104:  # sun_path limit: fall back to a plain placeholder file
            self.write(p, b"")
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(full)
        finally:
            s.close()

    def ldconfig(self, dirs: list[str]) -> str:
        """Build <root>/etc/ld.so.cache; returns how ("ldconfig" or "python")."""
        self.write("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
        self.write("/etc/ld.so.conf.d/gpuctk-sim.conf", "".join(d + "\n" for d in dirs))
        if os.geteuid() == 0 and os.access(LDCONFIG, os.X_OK) and self.arch == "x86_64":
            # -X: keep our symlinks exactly as the packages lay them out
            p = subprocess.run([LDCONFIG, "-X", "-r", self.root], capture_output=True, text=True)
            if p.returncode == 0 and os.path.exists(self.path("/etc/ld.so.cache")):
                self.ldconfig_method = "ldconfig"
                return self.ldconfig_method
        self.write("/etc/ld.so.cache", build_ldcache(self.ldcache_entries, self.arch))
        self.ldconfig_method = "python"
        return self.ldconfig_method


def _proc_devices(extra: dict[str, int]) -> str:
    chars = {1: "mem", 4: "tty", 5: "/dev/tty", 10: "misc", 13: "input", 29: "fb", 136: "pts", 180: "usb"}
    chars.update({v: k for k, v in extra.items()})
    lines = ["Character devices:"] + [f"{m:3d} {n}" for m, n in sorted(chars.items())]
    lines += ["", "Block devices:", "  7 loop", "  8 sd", "259 blkext"]
    return "\n".join(lines) + "\n"


def _mig_minors(gpu_minors: list[int]) -> str:
    lines = ["config 1", "monitor 2"]
    for g in gpu_minors:
        for gi in range(15):
            lines.append(f"gpu{g}/gi{gi}/access {P.mig_gi_minor(g, gi)}")
            for ci in range(8):
                lines.append(f"gpu{g}/gi{gi}/ci{ci}/access {P.mig_ci_minor(g, gi, ci)}")
    return "\n".join(lines) + "\n"


def _nvrm_version(v: str, arch: str) -> str:
    return (
        f"NVRM version: NVIDIA UNIX Open Kernel Module for {arch}  {v}  Release Build  "
        "(dvs-builder@U22-I3-AF03-09-1)  Wed Oct 29 23:15:11 UTC 2025\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )


def build_dgpu(b: Builder, inv: dict[str, Any], template: str | None) -> None:
    """A discrete-GPU (nvml platform) node: DGX layouts and the driver-only no-gpu node."""
    v = inv["driver_version"]
    libdir = P.X86_LIBDIR
    for name, soname in P.DRIVER_LIBS:
        b.lib(libdir, name.format(v=v), soname.format(v=v))
    for dev in P.DEV_LINKS:
        sonames = [s.format(v=v) for n, s in P.DRIVER_LIBS if n.startswith(dev + ".")]
        if sonames:
            b.symlink(f"{libdir}/{dev}", sonames[0])
    b.symlink(f"{libdir}/gbm/nvidia-drm_gbm.so", "../libnvidia-allocator.so.1")
    b.lib("/usr/lib/xorg/modules/drivers", "nvidia_drv.so", None)
    b.lib("/usr/lib/xorg/modules/extensions", f"libglxserver_nvidia.so.{v}", f"libglxserver_nvidia.so.{v}")
    for p, text in P.GRAPHICS_CONFIGS.items():
        b.write(p, text)
    b.write("/usr/share/nvidia/nvoptix.bin", b"\0" * 64)
    for fw in ("gsp_ga10x.bin", "gsp_tu10x.bin"):
        b.write(f"/lib/firmware/nvidia/{v}/{fw}", b"GSPFW" + fw.encode())
    script = render_script(inv, template)
    b.write("/usr/bin/nvidia-smi", script, 0o755)
    for binary in P.DRIVER_BINARIES[1:]:
        b.write(f"/usr/bin/{binary}", f"#!/bin/sh\necho '{binary} (gpuctk simulated, driver {v})'\n", 0o755)
    if inv.get("imex_channels"):
        for binary in ("nvidia-imex", "nvidia-imex-ctl"):
            b.write(f"/usr/bin/{binary}", f"#!/bin/sh\necho '{binary} (gpuctk simulated)'\n", 0o755)
    b.unix_socket("/run/nvidia-persistenced/socket")
    if inv.get("fabricmanager"):
        b.unix_socket("/run/nvidia-fabricmanager/socket")

    majors = {k: P.MAJORS[k] for k in ("nvidia", "drm", "nvidia-uvm", "nvidia-caps")}
    if inv.get("nvswitches"):
        majors["nvidia-nvswitch"] = P.MAJORS["nvidia-nvswitch"]
    if inv.get("imex_channels"):
        majors["nvidia-caps-imex-channels"] = P.MAJORS["nvidia-caps-imex-channels"]
    b.write("/proc/devices", _proc_devices(majors))
    b.write("/proc/driver/nvidia/version", _nvrm_version(v, inv.get("arch", "x86_64")))
    b.write(
        "/proc/driver/nvidia/params",
        "ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 1\n"
        "DeviceFileUID: 0\nDeviceFileGID: 0\nDeviceFileMode: 438\n",
    )
    b.write("/proc/driver/nvidia-caps/mig-minors", _mig_minors([g["minor"] for g in inv["gpus"]] or [0]))
    os.makedirs(b.path("/proc/driver/nvidia/gpus"), exist_ok=True)

    nv, caps = P.MAJORS["nvidia"], P.MAJORS["nvidia-caps"]
    b.chardev("/dev/nvidiactl", nv, 255)
    b.chardev("/dev/nvidia-modeset", nv, 254)
    b.chardev("/dev/nvidia-uvm", P.MAJORS["nvidia-uvm"], 0)
    b.chardev("/dev/nvidia-uvm-tools", P.MAJORS["nvidia-uvm"], 1)
    b.chardev("/dev/nvidia-caps/nvidia-cap1", caps, 1, 0o400)
    b.chardev("/dev/nvidia-caps/nvidia-cap2", caps, 2, 0o444)
    for gpu in inv["gpus"]:
        bus, minor = gpu["pci_bus_id"], gpu["minor"]
        b.chardev(f"/dev/nvidia{minor}", nv, minor)
        card, render = f"card{minor + 1}", f"renderD{128 + minor}"
        b.chardev(f"/dev/dri/{card}", P.MAJORS["drm"], minor + 1, 0o660, 44)
        b.chardev(f"/dev/dri/{render}", P.MAJORS["drm"], 128 + minor, 0o660, 105)
        b.symlink(f"/dev/dri/by-path/pci-{bus}-card", f"../{card}")
        b.symlink(f"/dev/dri/by-path/pci-{bus}-render", f"../{render}")
        sysdev = f"/sys/bus/pci/devices/{bus}"
        b.write(f"{sysdev}/vendor", "0x10de\n")
        b.write(f"{sysdev}/device", gpu.get("pci_device_id", "0x0000") + "\n")
        b.write(f"{sysdev}/class", "0x030200\n")
        os.makedirs(b.path(f"{sysdev}/drm/{card}"), exist_ok=True)
        os.makedirs(b.path(f"{sysdev}/drm/{render}"), exist_ok=True)
        b.write(
            f"/proc/driver/nvidia/gpus/{bus}/information",
            f"Model: \t\t {gpu['name']}\nIRQ:   \t\t 0\nGPU UUID: \t {gpu['uuid']}\n"
            f"Video BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
            f"DMA Mask: \t 0xfffffffffffff\nBus Location: \t {bus}\nDevice Minor: \t {minor}\n"
            f"GPU Firmware: \t {v}\nGPU Excluded:\t No\n",
        )
        for mig in gpu.get("mig_devices", []):
            gi, ci = mig["gpu_instance_id"], mig["compute_instance_id"]
            gim, cim = P.mig_gi_minor(minor, gi), P.mig_ci_minor(minor, gi, ci)
            b.chardev(f"/dev/nvidia-caps/nvidia-cap{gim}", caps, gim, 0o444)
            b.chardev(f"/dev/nvidia-caps/nvidia-cap{cim}", caps, cim, 0o444)
            base = f"/proc/driver/nvidia/capabilities/gpu{minor}/mig/gi{gi}"
            b.write(f"{base}/access", f"DeviceFileMinor: {gim}\nDeviceFileMode: 292\nDeviceFileModify: 1\n")
            b.write(
                f"{base}/ci{ci}/access", f"DeviceFileMinor: {cim}\nDeviceFileMode: 292\nDeviceFileModify: 1\n"
            )
    if inv.get("nvswitches"):
        sw = P.MAJORS["nvidia-nvswitch"]
        b.chardev("/dev/nvidia-nvswitchctl", sw, 255)
        for i in range(inv["nvswitches"]):
            b.chardev(f"/dev/nvidia-nvswitch{i}", sw, i)
    for i in range(inv.get("imex_channels", 0)):
        b.chardev(f"/dev/nvidia-caps-imex-channels/channel{i}", P.MAJORS["nvidia-caps-imex-channels"], i)
    b.ldconfig([libdir, "/usr/local/lib"])


def build_jetson(b: Builder, inv: dict[str, Any]) -> None:
    v = inv["driver_version"]
    d = P.JETSON_LIBDIR
    for name, soname in P.JETSON_LIBS:
        b.lib(d, name.format(v=v), soname.format(v=v))
    for link, target in P.JETSON_SYMLINKS.items():
        b.symlink(f"{d}/{link}", target.format(v=v))
    b.symlink("/usr/lib/aarch64-linux-gnu/libcuda.so", "nvidia/libcuda.so")
    b.write(
        "/etc/nv_tegra_release",
        "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
        "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
        "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n",
    )
    b.write("/sys/devices/soc0/family", "Tegra\n")
    b.write(
        "/proc/devices",
        _proc_devices({"nvidia": P.MAJORS["nvidia"], "drm": 226, "nvhost-gpu": P.MAJORS["nvhost"]}),
    )
    for path, key, minor, mode, gid in P.JETSON_DEVICES:
        b.chardev(path, P.MAJORS[key], minor, mode, gid)
    b.symlink("/dev/dri/by-path/platform-17000000.gpu-card", "../card0")
    b.symlink("/dev/dri/by-path/platform-17000000.gpu-render", "../renderD128")
    b.write("/usr/bin/nvidia-smi", render_script(inv, "qx-l40s.xml"), 0o755)
    csvdir = "/etc/nvidia-container-runtime/host-files-for-container.d"
    dev_lines = [f"dev, {p}" for p, *_ in P.JETSON_DEVICES if not p.startswith("/dev/dri")]
    dev_lines += ["dev, /dev/dri/card*", "dev, /dev/dri/renderD*", "dir, /dev/dri/by-path"]
    b.write(f"{csvdir}/devices.csv", "\n".join(dev_lines) + "\n")
    lib_lines = [f"lib, {d}/{n.format(v=v)}" for n, _ in P.JETSON_LIBS]
    lib_lines += [f"sym, {d}/{link}" for link in P.JETSON_SYMLINKS]
    lib_lines += ["sym, /usr/lib/aarch64-linux-gnu/libcuda.so", "lib, /usr/bin/nvidia-smi"]
    b.write(f"{csvdir}/drivers.csv", "\n".join(lib_lines) + "\n")
    b.write(f"{csvdir}/l4t.csv", "lib, /etc/nv_tegra_release\n   dir   , /usr/lib/aarch64-linux-gnu/tegra \n")
    os.makedirs(b.path("/usr/lib/aarch64-linux-gnu/tegra"), exist_ok=True)
    b.write("/usr/lib/aarch64-linux-gnu/tegra/nvidia_icd.json", "{}\n")
    b.ldconfig([d, "/usr/lib/aarch64-linux-gnu/tegra"])


def build_wsl(b: Builder, inv: dict[str, Any], template: str | None) -> None:
    store = inv["driver_store"]
    wsl = "/usr/lib/wsl/lib"
    b.lib(wsl, "libdxcore.so", "libdxcore.so")
    b.lib(wsl, "libd3d12.so", "libd3d12.so")
    b.lib(wsl, "libd3d12core.so", "libd3d12core.so")
    b.lib(wsl, "libcuda.so.1.1", "libcuda.so.1")
    b.symlink(f"{wsl}/libcuda.so", "libcuda.so.1")
    b.lib(wsl, "libnvidia-ml.so.1", "libnvidia-ml.so.1")
    for name, soname in [
        ("libcuda.so.1.1", "libcuda.so.1"),
        ("libcuda_loader.so", "libcuda_loader.so"),
        ("libnvidia-ptxjitcompiler.so.1", "libnvidia-ptxjitcompiler.so.1"),
        ("libnvidia-ml.so.1", "libnvidia-ml.so.1"),
        ("libnvidia-ml_loader.so", "libnvidia-ml_loader.so"),
        ("libnvdxgdmal.so.1", "libnvdxgdmal.so.1"),
    ]:
        b.write(f"{store}/{name}", shared_object(soname))
    b.write(f"{store}/nvcubins.bin", b"\0" * 64)
    b.write(f"{store}/nvwgf2umx.dll", b"MZ" + b"\0" * 62)
    script = render_script(inv, template)
    b.write(f"{store}/nvidia-smi", script, 0o755)
    b.write(f"{wsl}/nvidia-smi", script, 0o755)
    b.write("/proc/devices", _proc_devices({"misc": 10}))
    b.chardev("/dev/dxg", P.MAJORS["misc"], 62)
    b.ldconfig([wsl])
