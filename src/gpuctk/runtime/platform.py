"""Mode resolution (NVIDIA/nvidia-container-toolkit `internal/info/auto.go`, go-nvlib
`pkg/nvlib/info/property-extractor.go`) and the platform probes behind it.

``resolve_mode`` is pure given a ``Probes`` object; tests pass a ``StaticProbes``. The real
probes (``HostProbes``) dlopen libdxcore / libnvidia-ml through ctypes, imported lazily and
only when ``auto`` mode really has to look at the platform.
"""

from __future__ import annotations

import os

from gpuctk.request import ContainerRequest

PLATFORM_WSL = "wsl"
PLATFORM_TEGRA = "tegra"
PLATFORM_NVML = "nvml"
PLATFORM_UNKNOWN = "unknown"


class Probes:
    """What ``auto`` needs to know about the host. Subclass or use ``StaticProbes`` in tests."""

    def has_dxcore(self) -> bool:
        raise NotImplementedError

    def has_tegra_files(self) -> bool:
        raise NotImplementedError

    def has_nvml(self) -> bool:
        raise NotImplementedError

    def has_integrated_gpu(self) -> bool:
        raise NotImplementedError


class StaticProbes(Probes):
    def __init__(
        self, dxcore: bool = False, tegra: bool = False, nvml: bool = False, igpu: bool = False
    ) -> None:
        self.dxcore, self.tegra, self.nvml, self.igpu = dxcore, tegra, nvml, igpu

    def has_dxcore(self) -> bool:
        return self.dxcore

    def has_tegra_files(self) -> bool:
        return self.tegra

    def has_nvml(self) -> bool:
        return self.nvml

    def has_integrated_gpu(self) -> bool:
        return self.igpu


def _dlopen(name: str) -> object | None:
    import ctypes

    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


class HostProbes(Probes):
    """The real host: ``root`` prefixes the Tegra marker files (the driver root)."""

    def __init__(self, root: str = "/") -> None:
        self.root = root or "/"
        self._nvml: object | None = None
        self._nvml_tried = False

    def has_dxcore(self) -> bool:
        return _dlopen("libdxcore.so") is not None

    def has_tegra_files(self) -> bool:
        if os.path.isfile(os.path.join(self.root, "etc/nv_tegra_release")):
            return True
        try:
            with open(os.path.join(self.root, "sys/devices/soc0/family")) as f:
                return f.read().strip().lower().startswith("tegra")
        except OSError:
            return False

    def _lib(self) -> object | None:
        if not self._nvml_tried:
            self._nvml_tried = True
            self._nvml = _dlopen("libnvidia-ml.so.1")
        return self._nvml

    def has_nvml(self) -> bool:
        return self._lib() is not None

    def has_integrated_gpu(self) -> bool:
        lib = self._lib()
        if lib is None:
            return False
        import ctypes

        try:
            if lib.nvmlInit_v2() != 0:  # type: ignore[attr-defined]
                return False
        except AttributeError:
            return False
        try:
            count = ctypes.c_uint(0)
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:  # type: ignore[attr-defined]
                return False
            for i in range(count.value):
                handle = ctypes.c_void_p()
                if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:  # type: ignore[attr-defined]
                    continue
                buf = ctypes.create_string_buffer(256)
                if lib.nvmlDeviceGetName(handle, buf, 256) != 0:  # type: ignore[attr-defined]
                    continue
                name = buf.value.decode(errors="replace")
                if "(nvgpu)" in name or "NVIDIA Thor" in name:
                    return True
            return False
        finally:
            lib.nvmlShutdown()  # type: ignore[attr-defined]


def platform_of(probes: Probes) -> str:
    """WSL if DXCore; Tegra if (Tegra files and no NVML) or an integrated GPU; NVML; unknown."""
    if probes.has_dxcore():
        return PLATFORM_WSL
    nvml = probes.has_nvml()
    if (probes.has_tegra_files() and not nvml) or probes.has_integrated_gpu():
        return PLATFORM_TEGRA
    if nvml:
        return PLATFORM_NVML
    return PLATFORM_UNKNOWN


def resolve_mode(mode: str, image: ContainerRequest, probes: Probes) -> str:
    """``auto`` → ``cdi`` when every request is a qualified CDI name; else ``csv`` on Tegra and
    ``jit-cdi`` everywhere else. Other modes are returned unchanged."""
    if mode != "auto":
        return mode
    if image.only_fully_qualified_cdi_devices():
        return "cdi"
    return "csv" if platform_of(probes) == PLATFORM_TEGRA else "jit-cdi"
