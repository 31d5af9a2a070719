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
from gpuctk.runtime.platform import HostProbes, Probes

AUTOMATIC_KIND = "runtime.nvidia.com/gpu"


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
    def __init__(self, cfg: dict, probes: Probes | None = None) -> None:
        self.cfg = cfg
        self.driver_root = cfg["nvidia-container-cli"]["root"] or "/"
        self._probes = probes

    # ----------------------------------------------------------------- platform
    @property
    def probes(self) -> Probes:
        if self._probes is None:
            self._probes = HostProbes(self.driver_root)
        return self._probes

    # ----------------------------------------------------------------- CDI
    def inject_registry_devices(self, oci_spec: dict, names: list[str], spec_dirs: list[str]) -> list[str]:
        from gpuctk.cdi import CDIError
        from gpuctk.cdi.registry import Registry

        try:
            # cache=True: parsed specs are reused while no spec file changes (gpuctk.cdi.cache)
            return Registry(spec_dirs=list(spec_dirs), cache=True).inject_devices(oci_spec, names)
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

    def jit_spec(self, mode: str, ids: list[str]) -> dict:
        """An in-memory CDI spec for the requested ids (mode ``auto`` = GPUs; ``gds``, ``imex``, …)."""
        try:
            from gpuctk.generate.jit import jit_spec
        except ImportError:
            raise ModifyError(
                "jit-cdi and csv modes need gpuctk's spec generator (gpuctk.generate.jit), which this build "
                'lacks; set nvidia-container-runtime.mode = "cdi" and generate a spec with `gpuctk cdi generate`'
            ) from None
        root = self.driver_root
        try:
            if mode == "auto":
                return jit_spec(ids, self.cfg, driver_root=root, dev_root=root)
            return jit_spec(ids, self.cfg, driver_root=root, dev_root=root, mode=mode)
        except TypeError as exc:
            if "mode" in str(exc):
                raise ModifyError(
                    f"the spec generator in this build cannot generate mode={mode} devices"
                ) from None
            raise
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

    def hook_args(self, hook_path: str, name: str, args: list[str]) -> list[str]:
        try:
            from gpuctk.hooks.argv import hook_argv
        except ImportError:
            base = os.path.basename(hook_path)
            if base == "nvidia-ctk":
                return [base, "hook", name, *args]
            return [base, name, *args]
        return hook_argv(hook_path, name, args)

    # ----------------------------------------------------------------- driver facts
    def driver_version(self) -> str | None:
        try:
            with open(os.path.join(self.driver_root, "proc/driver/nvidia/version")) as f:
                first = f.readline()
        except OSError:
            return None
        for word in first.split():
            parts = word.split(".")
            if len(parts) >= 2 and all(p.isdigit() for p in parts):
                return word
        return None

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
        try:
            from gpuctk.sandbox.gvisor import runsc_ready_oci_spec
        except ImportError:
            raise ModifyError(
                'sandbox = "gvisor" needs gpuctk.sandbox.gvisor, which this build lacks'
            ) from None
        return runsc_ready_oci_spec(oci_spec)
