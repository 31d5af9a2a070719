"""The simulated node profiles: pure data (GPUs, driver version, files), no I/O.

Layouts follow NVIDIA's published driver packages (the 580 x86_64 .run/.deb file lists:
library names, SONAMEs, firmware names, binaries), the real `nvidia-smi -q -x` captures
in ``data/`` (product names, PCI bus ids, DTD versions), the DGX A100/H100 topologies and
the L4T (Jetson) CSV mount lists. docs/simulation.md lists the sources and the gaps.
"""

from __future__ import annotations

import uuid
from typing import Any

PROFILES = ("dgx-h100", "dgx-a100-mig", "jetson-orin", "wsl2", "no-gpu")

# Character-device majors as the simulated /proc/devices lists them. 195 and 226 are
# fixed by the kernel/driver; the others are dynamic on real hosts (values seen on DGX).
MAJORS = {
    "nvidia": 195,
    "drm": 226,
    "nvidia-uvm": 510,
    "nvidia-caps": 508,
    "nvidia-nvswitch": 509,
    "nvidia-caps-imex-channels": 507,
    "misc": 10,
    "nvhost": 496,
}

X86_LIBDIR = "/usr/lib/x86_64-linux-gnu"

# (file name pattern, SONAME pattern); {v} = driver version. The .so dev links and
# SONAME links are created next to them, as the distribution packages do.
DRIVER_LIBS: list[tuple[str, str]] = [
    ("libcuda.so.{v}", "libcuda.so.1"),
    ("libcudadebugger.so.{v}", "libcudadebugger.so.1"),
    ("libnvidia-ml.so.{v}", "libnvidia-ml.so.1"),
    ("libnvidia-ptxjitcompiler.so.{v}", "libnvidia-ptxjitcompiler.so.1"),
    ("libnvidia-nvvm.so.{v}", "libnvidia-nvvm.so.4"),
    ("libnvidia-opencl.so.{v}", "libnvidia-opencl.so.1"),
    ("libnvidia-cfg.so.{v}", "libnvidia-cfg.so.1"),
    ("libnvidia-allocator.so.{v}", "libnvidia-allocator.so.1"),
    ("libnvidia-encode.so.{v}", "libnvidia-encode.so.1"),
    ("libnvcuvid.so.{v}", "libnvcuvid.so.1"),
    ("libnvidia-opticalflow.so.{v}", "libnvidia-opticalflow.so.1"),
    ("libnvidia-fbc.so.{v}", "libnvidia-fbc.so.1"),
    ("libnvidia-ngx.so.{v}", "libnvidia-ngx.so.1"),
    ("libnvidia-sandboxutils.so.{v}", "libnvidia-sandboxutils.so.1"),
    ("libnvoptix.so.{v}", "libnvoptix.so.1"),
    ("libnvidia-gpucomp.so.{v}", "libnvidia-gpucomp.so.{v}"),
    ("libnvidia-glcore.so.{v}", "libnvidia-glcore.so.{v}"),
    ("libnvidia-glsi.so.{v}", "libnvidia-glsi.so.{v}"),
    ("libnvidia-glvkspirv.so.{v}", "libnvidia-glvkspirv.so.{v}"),
    ("libnvidia-eglcore.so.{v}", "libnvidia-eglcore.so.{v}"),
    ("libnvidia-tls.so.{v}", "libnvidia-tls.so.{v}"),
    ("libnvidia-rtcore.so.{v}", "libnvidia-rtcore.so.{v}"),
    ("libEGL_nvidia.so.{v}", "libEGL_nvidia.so.0"),
    ("libGLX_nvidia.so.{v}", "libGLX_nvidia.so.0"),
    ("libGLESv2_nvidia.so.{v}", "libGLESv2_nvidia.so.2"),
    ("libGLESv1_CM_nvidia.so.{v}", "libGLESv1_CM_nvidia.so.1"),
    ("vdpau/libvdpau_nvidia.so.{v}", "libvdpau_nvidia.so.1"),
    # versioned independently of the driver (egl-wayland / egl-gbm projects)
    ("libnvidia-egl-gbm.so.1.1.2", "libnvidia-egl-gbm.so.1"),
    ("libnvidia-egl-wayland.so.1.1.19", "libnvidia-egl-wayland.so.1"),
]
# libraries that ship a `.so` development link in the driver packages
DEV_LINKS = (
    "libcuda.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-opencl.so",
    "libnvidia-encode.so",
    "libnvcuvid.so",
    "libnvidia-cfg.so",
    "libnvidia-fbc.so",
    "libnvidia-opticalflow.so",
    "libnvidia-allocator.so",
    "libnvidia-nvvm.so",
)
DRIVER_BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
GRAPHICS_CONFIGS = {
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json": '{\n    "file_format_version" : "1.0.0",\n    "ICD" : {\n        "library_path" : "libEGL_nvidia.so.0"\n    }\n}\n',
    "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json": '{\n    "file_format_version" : "1.0.0",\n    "ICD" : {\n        "library_path" : "libnvidia-egl-gbm.so.1"\n    }\n}\n',
    "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json": '{\n    "file_format_version" : "1.0.0",\n    "ICD" : {\n        "library_path" : "libnvidia-egl-wayland.so.1"\n    }\n}\n',
    "/etc/vulkan/icd.d/nvidia_icd.json": '{\n    "file_format_version" : "1.0.1",\n    "ICD": {\n        "library_path": "libGLX_nvidia.so.0",\n        "api_version" : "1.4.312"\n    }\n}\n',
    "/etc/OpenCL/vendors/nvidia.icd": "libnvidia-opencl.so.1\n",
}


def _uuid(profile: str, *parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "gpuctk-sim/" + profile + "/" + "/".join(map(str, parts))))


def mig_gi_minor(gpu_minor: int, gi: int) -> int:
    """Minor of ``gpu<g>/gi<i>/access`` in nvidia-caps (15 GIs x (1 + 8 CIs) per GPU, from 3)."""
    return 3 + gpu_minor * 135 + gi * 9


def mig_ci_minor(gpu_minor: int, gi: int, ci: int) -> int:
    return mig_gi_minor(gpu_minor, gi) + 1 + ci


# DGX H100 / A100 PCI bus ids: the H100 ones are those of the real capture.
H100_BUS = [
    "0000:53:00.0",
    "0000:64:00.0",
    "0000:75:00.0",
    "0000:86:00.0",
    "0000:97:00.0",
    "0000:a8:00.0",
    "0000:b9:00.0",
    "0000:ca:00.0",
]
A100_BUS = [
    "0000:07:00.0",
    "0000:0f:00.0",
    "0000:47:00.0",
    "0000:4e:00.0",
    "0000:87:00.0",
    "0000:90:00.0",
    "0000:b7:00.0",
    "0000:bd:00.0",
]
A100_MIG_LAYOUT = {  # gpu index -> [(profile, gpu instance id, compute instance id)]
    0: [("3g.20gb", 2, 0), ("2g.10gb", 3, 0), ("1g.5gb", 9, 0), ("1g.5gb", 10, 0)],
    1: [("4g.20gb", 1, 0), ("2g.10gb", 5, 0), ("1g.5gb", 13, 0)],
}


def profile_data(profile: str, driver_version: str | None = None) -> dict[str, Any]:
    """The inventory (fixture-JSON shape) and layout switches of one profile."""
    if profile == "dgx-h100":
        v = driver_version or "580.105.08"
        gpus = [
            {
                "index": i,
                "minor": i,
                "uuid": "GPU-" + _uuid(profile, i),
                "name": "NVIDIA H100 80GB HBM3",
                "pci_bus_id": H100_BUS[i],
                "pci_device_id": "0x2330",
                "architecture": "Hopper",
                "memory_mib": 81559,
                "mig_enabled": False,
                "mig_devices": [],
            }
            for i in range(8)
        ]
        return {
            "platform": "nvml",
            "driver_version": v,
            "cuda_version": "13.0",
            "arch": "x86_64",
            "gpus": gpus,
            "nvswitches": 4,
            "imex_channels": 1,
            "fabricmanager": True,
            "template": "qx-h100.xml",
        }
    if profile == "dgx-a100-mig":
        v = driver_version or "570.148.08"
        gpus = []
        for i in range(8):
            migs = [
                {
                    "index": j,
                    "gpu_instance_id": gi,
                    "compute_instance_id": ci,
                    "profile": prof,
                    "uuid": "MIG-" + _uuid(profile, i, gi, ci),
                    "gfx": False,
                }
                for j, (prof, gi, ci) in enumerate(A100_MIG_LAYOUT.get(i, []))
            ]
            gpus.append(
                {
                    "index": i,
                    "minor": i,
                    "uuid": "GPU-" + _uuid(profile, i),
                    "name": "NVIDIA A100-SXM4-40GB",
                    "pci_bus_id": A100_BUS[i],
                    "pci_device_id": "0x20b0",
                    "architecture": "Ampere",
                    "memory_mib": 40960,
                    "mig_enabled": bool(migs),
                    "mig_devices": migs,
                }
            )
        return {
            "platform": "nvml",
            "driver_version": v,
            "cuda_version": "12.8",
            "arch": "x86_64",
            "gpus": gpus,
            "nvswitches": 0,
            "imex_channels": 0,
            "fabricmanager": False,
            "template": "qx-a100.xml",
        }
    if profile == "jetson-orin":
        v = driver_version or "540.4.0"
        gpus = [
            {
                "index": 0,
                "minor": 0,
                "uuid": "GPU-" + _uuid(profile, 0),
                "name": "Orin (nvgpu)",
                "pci_bus_id": None,
                "architecture": "Ampere",
                "memory_mib": 62841,
                "mig_enabled": False,
                "mig_devices": [],
            }
        ]
        return {
            "platform": "tegra",
            "driver_version": v,
            "cuda_version": "12.6",
            "arch": "aarch64",
            "gpus": gpus,
            "nvswitches": 0,
            "imex_channels": 0,
            "fabricmanager": False,
            "template": None,
        }
    if profile == "wsl2":
        v = driver_version or "580.102.01"
        gpus = [
            {
                "index": 0,
                "minor": 0,
                "uuid": "GPU-" + _uuid(profile, 0),
                "name": "NVIDIA GeForce RTX 4090",
                "pci_bus_id": "0000:01:00.0",
                "pci_device_id": "0x2684",
                "architecture": "Ada Lovelace",
                "memory_mib": 24564,
                "mig_enabled": False,
                "mig_devices": [],
            }
        ]
        return {
            "platform": "wsl",
            "driver_version": v,
            "cuda_version": "13.0",
            "arch": "x86_64",
            "gpus": gpus,
            "nvswitches": 0,
            "imex_channels": 0,
            "fabricmanager": False,
            "template": "qx-l40s.xml",
            "driver_store": "/usr/lib/wsl/drivers/nv_dispi.inf_amd64_5d3cb8c1d6d8a6b4",
        }
    if profile == "no-gpu":
        v = driver_version or "580.105.08"
        return {
            "platform": "nvml",
            "driver_version": v,
            "cuda_version": "13.0",
            "arch": "x86_64",
            "gpus": [],
            "nvswitches": 0,
            "imex_channels": 0,
            "fabricmanager": False,
            "template": "qx-h100.xml",
        }
    from gpuctk.errors import GpuctkError

    raise GpuctkError(f"unknown simulation profile {profile!r} (choose from {', '.join(PROFILES)})")


JETSON_LIBDIR = "/usr/lib/aarch64-linux-gnu/nvidia"
# (path, SONAME) of the L4T driver libraries the simulated Orin carries
JETSON_LIBS = [
    ("libcuda.so.1.1", "libcuda.so.1"),
    ("libnvidia-ml.so.1", "libnvidia-ml.so.1"),
    ("libnvidia-ptxjitcompiler.so.{v}", "libnvidia-ptxjitcompiler.so.1"),
    ("libnvidia-nvvm.so.{v}", "libnvidia-nvvm.so.4"),
    ("libnvrm_gpu.so", "libnvrm_gpu.so"),
    ("libnvrm_mem.so", "libnvrm_mem.so"),
    ("libnvrm_host1x.so", "libnvrm_host1x.so"),
    ("libnvos.so", "libnvos.so"),
    ("libnvsocsys.so", "libnvsocsys.so"),
    ("libnvgpu.so", "libnvgpu.so"),
]
JETSON_SYMLINKS = {  # link (in JETSON_LIBDIR) -> target
    "libcuda.so": "libcuda.so.1.1",
    "libnvidia-ptxjitcompiler.so.1": "libnvidia-ptxjitcompiler.so.{v}",
    "libnvidia-nvvm.so.4": "libnvidia-nvvm.so.{v}",
}
JETSON_DEVICES = [  # (path, major key, minor, mode, gid)
    ("/dev/nvidia0", "nvidia", 0, 0o666, 0),
    ("/dev/nvhost-ctrl-gpu", "nvhost", 1, 0o660, 44),
    ("/dev/nvhost-prof-gpu", "nvhost", 2, 0o660, 44),
    ("/dev/nvhost-gpu", "nvhost", 3, 0o660, 44),
    ("/dev/nvhost-as-gpu", "nvhost", 4, 0o660, 44),
    ("/dev/nvhost-dbg-gpu", "nvhost", 5, 0o660, 44),
    ("/dev/nvhost-ctxsw-gpu", "nvhost", 6, 0o660, 44),
    ("/dev/nvhost-sched-gpu", "nvhost", 7, 0o660, 44),
    ("/dev/nvmap", "misc", 125, 0o666, 0),
    ("/dev/dri/card0", "drm", 0, 0o660, 44),
    ("/dev/dri/renderD128", "drm", 128, 0o666, 0),
]
