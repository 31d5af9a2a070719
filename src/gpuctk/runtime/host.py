"""The shim's edge to the outside world: CDI registry, JIT generator, executables, /proc and /sys.

``modify_spec`` talks only to a ``Host``; tests subclass it to swap any of these. Heavy or
optional packages (the CDI library, the generator, the gVisor rules) are imported lazily,
so a container that asks for no GPU never pays for them.
"""

from __future__ import annotations

import os
import sys

from gpuctk.errors import GpuctkError
from gpuctk.runtime.lowlevel import find_executable

TYPE_CHECKING = False  # no `typing` at run time: the shim's create path imports this module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from gpuctk.config.types import ConfigDict
    from gpuctk.runtime.platform import Probes

AUTOMATIC_KIND = "runtime.nvidia.com/gpu"


# where a driver's libcuda.so.<version> lives, relative to the driver root
LIBRARY_DIRS = (
    "usr/lib64",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib64",
    "lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib",
    "lib",
)


def _is_version(word: str) -> bool:
    parts = word.split(".")
    return len(parts) >= 2 and all(p.isdigit() and len(p) <= 9 for p in parts)


def libcuda_version(root: str) -> str | None:
    """``550.54.15`` from ``<root>/<libdir>/libcuda.so.550.54.15`` (the first library dir that
    holds one; the highest version there), else None."""
    prefix = "libcuda.so."
    for d in LIBRARY_DIRS:
        try:
            names = os.listdir(os.path.join(root, d))
        except OSError:
            continue
        found = [n[len(prefix) :] for n in names if n.startswith(prefix) and _is_version(n[len(prefix) :])]
        if found:
            return max(found, key=lambda v: [int(p) for p in v.split(".")])
    return None


class ModifyError(GpuctkError):
    """The spec of a GPU container could not be modified; the container is not started."""


def _sibling_dirs() -> list[str]:
    """Directories holding gpuctk's own console scripts (the venv's bin dir, the shim's dir)."""
    dirs = [os.path.dirname(sys.executable)]
    if sys.argv and sys.argv[0]:
        dirs.append(os.path.dirname(os.path.realpath(sys.argv[0])))
        dirs.append(os.path.dirname(os.path.abspath(sys.argv[0])))
    return list(dict.fromkeys(d for d in dirs if d))


def find_gpuctk_tool(name: str) -> str | None:
    for d in _sibling_dirs():
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return find_executable(name)


class Host:
    def __init__(self, cfg: ConfigDict, probes: Probes | None = None) -> None:
        self.cfg = cfg
        self.driver_root = cfg["nvidia-container-cli"]["root"] or "/"
        self._probes = probes
        self.warn: Callable[[str], None] | None = None

    # ----------------------------------------------------------------- platform
    @property
    def probes(self) -> Probes:
        if self._probes is None:
            from gpuctk.runtime.platform import HostProbes  # only `auto` mode looks at the platform

            # the Tegra markers are looked for on the host's /, not under the driver root, as
            # upstream does (NVIDIA/nvidia-container-toolkit `internal/info/auto.go`)
            self._probes = HostProbes("/")
        return self._probes

    # ----------------------------------------------------------------- CDI
    def inject_registry_devices(self, oci_spec: dict, names: list[str], spec_dirs: list[str]) -> list[str]:
        from gpuctk.cdi import CDIError
        from gpuctk.cdi.registry import Registry

        try:
            # cache=True: parsed specs are reused while no spec file changes (gpuctk.cdi.cache);
            # trusted_only=True: as root, spec files that are not root's own are not used
            reg = Registry(spec_dirs=list(spec_dirs), cache=True, trusted_only=True)
            for path, why in reg.ignored().items():
                if self.warn is not None:  # the shim's log (set by runtime.main)
                    self.warn(f"CDI spec {path} not used: {why}")
            return reg.inject_devices(oci_spec, names)
        except CDIError as exc:
            raise ModifyError(f"failed to inject CDI devices: {exc}") from None

    def apply_cdi_spec(self, oci_spec: dict, cdi_spec: dict, source: str) -> list[str]:
        """Apply every device of an in-memory spec plus its common edits."""
        from gpuctk.cdi import CDIError, Spec, apply_edits

        try:
            spec = Spec.from_dict(cdi_spec, source=source)
            names = [f"{spec.kind}={d.name}" for d in spec.devices]
            if names:
                from gpuctk.cdi import Registry

                return Registry(spec_dirs=[], specs=[spec]).inject_devices(oci_spec, names)
            if cdi_spec.get("containerEdits"):
                apply_edits(oci_spec, cdi_spec["containerEdits"])
            return []
        except CDIError as exc:
            raise ModifyError(f"failed to apply {source}: {exc}") from None

    def apply_edits(self, oci_spec: dict, edits: dict) -> None:
        from gpuctk.cdi import apply_edits

        apply_edits(oci_spec, edits)

    def jit_spec(self, mode: str, ids: list[str], csv_all: bool = False) -> dict:
        """An in-memory CDI spec for the requested ids (mode ``auto`` = GPUs; ``gds``, ``imex``, …).
        ``csv_all`` (``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``): the CSV-reading modes use every
        ``*.csv`` file of ``modes.csv.mount-spec-path`` (a host path), not only the base files."""
        from gpuctk.generate.jit import jit_spec

        root = self.driver_root
        plain: dict[str, Any] = self.cfg  # type: ignore[assignment]  # the generator takes a plain dict
        try:
            return jit_spec(ids, plain, driver_root=root, dev_root=root, mode=mode, csv_all=csv_all)
        except GpuctkError as exc:
            raise ModifyError(f"failed to generate CDI spec for mode={mode}: {exc}") from None

    # ----------------------------------------------------------------- hooks
    def legacy_hook_path(self) -> str:
        """The configured ``nvidia-container-runtime-hook.path``, else gpuctk's own
        ``gpuctk-runtime-hook`` (beside the shim, then PATH)."""
        configured = self.cfg["nvidia-container-runtime-hook"]["path"]
        found = find_executable(configured) if configured else None
        if found:
            return found
        own = find_gpuctk_tool("gpuctk-runtime-hook")
        if own:
            return own
        raise ModifyError(
            f"legacy mode: prestart hook {configured!r} not found, and neither is gpuctk-runtime-hook"
        )

    def cdi_hook_path(self) -> str:
        """The executable named in CDI hooks gpuctk adds itself (``nvidia-ctk.path`` or gpuctk-hook)."""
        configured = self.cfg["nvidia-ctk"]["path"]
        found = find_executable(configured) if configured else None
        return found or find_gpuctk_tool("gpuctk-hook") or "/usr/bin/nvidia-ctk"

    def hook_env(self) -> list[str]:
        """The environment of every hook that has none of its own (never the container's).

        A config found through ``$XDG_CONFIG_HOME`` is named explicitly, so the legacy hook
        reads the file the shim read even without that variable."""
        from gpuctk.config import ENV_CONFIG_PATH, config_path
        from gpuctk.oci.spec import safe_hook_env

        env = safe_hook_env(os.environ)
        if not os.environ.get(ENV_CONFIG_PATH) and os.environ.get("XDG_CONFIG_HOME"):
            found = config_path()
            if found.startswith("/") and os.path.isfile(found):
                env.append(f"{ENV_CONFIG_PATH}={found}")
        return env

    def hook_args(self, hook_path: str, name: str, args: list[str]) -> list[str]:
        from gpuctk.hooks.argv import hook_argv

        return hook_argv(hook_path, name, args)

    # ----------------------------------------------------------------- driver facts
    def driver_version(self) -> str | None:
        """The host driver's version: ``proc/driver/nvidia/version`` under the driver root, else
        the suffix of ``libcuda.so.<version>`` in the root's library directories (a driver
        container's root such as ``/run/nvidia/driver`` has no ``/proc`` of its own), as
        upstream's driver root does (NVIDIA/nvidia-container-toolkit `internal/lookup/root/root.go`)."""
        try:
            with open(os.path.join(self.driver_root, "proc/driver/nvidia/version")) as f:
                first = f.readline(4096)
        except OSError:
            first = ""
        for word in first.split():
            if _is_version(word):
                return word
        return libcuda_version(self.driver_root)

    def gpu_information(self) -> list[dict[str, str]]:
        """``/proc/driver/nvidia/gpus/*/information`` under the driver root: UUID, bus id, minor."""
        import glob

        out = []
        for path in sorted(
            glob.glob(os.path.join(self.driver_root, "proc/driver/nvidia/gpus/*/information"))
        ):
            info: dict[str, str] = {}
            try:
                with open(path) as f:
                    for line in f:
                        key, sep, value = line.partition(":")
                        if sep:
                            info[key.strip()] = value.strip()
            except OSError:
                continue
            out.append(
                {
                    "uuid": info.get("GPU UUID", ""),
                    "bus_id": info.get("Bus Location", ""),
                    "minor": info.get("Device Minor", ""),
                }
            )
        return out

    def drm_nodes(self, bus_id: str) -> list[str]:
        """``/dev/dri/<name>`` for each DRM node of a PCI device."""
        sys_dir = os.path.join("/sys/bus/pci/devices", bus_id.lower(), "drm")
        try:
            names = sorted(os.listdir(sys_dir))
        except OSError:
            return []
        return [f"/dev/dri/{n}" for n in names if n.startswith(("card", "renderD"))]

    def cuda_properties(self) -> dict[str, str | None]:
        """``cuda`` (driver CUDA version) and ``arch`` (compute capability of device 0) via libcuda."""
        import ctypes

        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError:
            return {}
        props: dict[str, str | None] = {}
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0:
            props["cuda"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
        if lib.cuInit(0) == 0:
            dev = ctypes.c_int(0)
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            if (
                lib.cuDeviceGet(ctypes.byref(dev), 0) == 0
                and lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) == 0
                and lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) == 0
            ):
                props["arch"] = f"{major.value}.{minor.value}"
        return props

    # ----------------------------------------------------------------- gVisor
    def runsc_ready(self, oci_spec: dict) -> list[str]:
        from gpuctk.sandbox.gvisor import runsc_ready_oci_spec

        return runsc_ready_oci_spec(oci_spec)
