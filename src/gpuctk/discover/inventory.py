"""GPU inventory behind one interface, three backends: NVML (nvidia-ml-py, optional,
imported lazily), procfs/sysfs, and a fixture JSON file.

An inventory is plain data::

    {"source": str, "driver_version": str|None, "cuda_version": str|None, "platform": str,
     "gpus": [{"index", "minor", "uuid", "name", "pci_bus_id", "mig_enabled",
               "mig_devices": [{"index", "uuid", "gpu_instance_id", "compute_instance_id",
                                "profile", "gfx"}]}]}
"""

from __future__ import annotations

import os
import re
from typing import Any

from gpuctk.cdi.errors import escape
from gpuctk.discover.procfs import parse_information, parse_nvrm_version, read_text
from gpuctk.discover.rootfs import DriverRoot
from gpuctk.errors import GpuctkError

ENV_INVENTORY = "GPUCTK_INVENTORY"


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GpuctkError(f"{where}: expected a list")
    return value


def _int_field(obj: dict[str, Any], keys: tuple[str, ...], default: int, where: str) -> int:
    for k in keys:
        if obj.get(k) is not None:
            value = obj[k]
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise GpuctkError(f"{where}.{k}: expected an integer")
            try:
                n = int(value)
            except ValueError:  # not digits, or over the interpreter's digit limit
                raise GpuctkError(f"{where}.{k}: expected an integer") from None
            if not 0 <= n < 1 << 31:
                raise GpuctkError(f"{where}.{k}: expected an integer from 0 to {(1 << 31) - 1}")
            return n
    return default


def _bool_field(obj: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise GpuctkError(f"{where}.{key}: expected a boolean (true or false)")
    return value


def _str_field(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise GpuctkError(f"{where}.{key}: expected a string")
    return value


def _normalise(inv: dict[str, Any], source: str) -> dict[str, Any]:
    gpus = []
    for i, g in enumerate(_list(inv.get("gpus"), f"{source}: gpus")):
        where = f"{source}: gpus[{i}]"
        if not isinstance(g, dict):
            raise GpuctkError(f"{where}: expected an object")
        migs = []
        for j, m in enumerate(_list(g.get("mig_devices"), f"{where}.mig_devices")):
            mwhere = f"{where}.mig_devices[{j}]"
            if not isinstance(m, dict):
                raise GpuctkError(f"{mwhere}: expected an object")
            migs.append(
                {
                    "index": _int_field(m, ("index",), j, mwhere),
                    "uuid": _str_field(m, "uuid", mwhere),
                    "gpu_instance_id": _int_field(m, ("gpu_instance_id",), 0, mwhere),
                    "compute_instance_id": _int_field(m, ("compute_instance_id",), 0, mwhere),
                    "profile": _str_field(m, "profile", mwhere),
                    "gfx": _bool_field(m, "gfx", False, mwhere),
                }
            )
        gpus.append(
            {
                "index": _int_field(g, ("index",), i, where),
                "minor": _int_field(g, ("minor", "minor_number"), i, where),
                "uuid": _str_field(g, "uuid", where),
                "name": _str_field(g, "name", where),
                "pci_bus_id": (_str_field(g, "pci_bus_id", where) or "").lower() or None,
                "mig_enabled": _bool_field(g, "mig_enabled", bool(migs), where),
                "mig_devices": migs,
            }
        )
    versions = {k: inv.get(k) for k in ("driver_version", "cuda_version")}
    for k, v in versions.items():
        if v is not None and not isinstance(v, str):
            raise GpuctkError(f"{source}: {k}: expected a string")
    return {
        "source": str(inv.get("source") or source),
        **versions,
        "platform": str(inv.get("platform") or "nvml"),
        "gpus": gpus,
    }


MAX_INVENTORY_BYTES = 16 << 20
MAX_INVENTORY_DEPTH = 32  # the schema nests 4 levels


def _depth_ok(text: str, limit: int) -> bool:
    """No more than ``limit`` nested ``[``/``{`` outside strings (checked before decoding:
    json's C decoder recurses, and a deep document would exhaust the stack)."""
    if text.count("[") + text.count("{") <= limit:
        return True
    depth = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def load_fixture(path: str) -> dict[str, Any]:
    """A fixture inventory: a regular JSON file (no FIFO, no device), size- and depth-capped."""
    from gpuctk.discover.readfile import read_regular
    from gpuctk.fileio import decode_json

    name = escape(path)
    raw = read_regular(path, "inventory", MAX_INVENTORY_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GpuctkError(f"{name}: invalid inventory JSON: not UTF-8 (byte {exc.start})") from None
    if not _depth_ok(text, MAX_INVENTORY_DEPTH):
        raise GpuctkError(f"{name}: invalid inventory JSON: nested more than {MAX_INVENTORY_DEPTH} levels")
    try:
        # syntax, integer digits, lone surrogate escapes (a "\ud800" string is no UTF-8 name)
        data = decode_json(text, name, depth=MAX_INVENTORY_DEPTH)
    except GpuctkError as exc:
        message, plain = str(exc), f"{name}: invalid JSON: "
        if message.startswith(plain):
            message = f"{name}: invalid inventory JSON: {message[len(plain) :]}"
        raise GpuctkError(message) from None
    if not isinstance(data, dict):
        raise GpuctkError(f"{name}: inventory must be a JSON object")
    return _normalise(data, f"fixture:{name}")


NVML_LIBRARY = "libnvidia-ml.so.1"


def nvml_library(root: DriverRoot) -> str | None:
    """``libnvidia-ml.so.1`` located under the driver root (its library directories, the
    ``--library-search-path`` ones, its ld.so.cache), as upstream's nvcdi does before it
    loads NVML by path (NVIDIA/nvidia-container-toolkit ``pkg/nvcdi/lib.go``)."""
    hits = root.locate_libraries(NVML_LIBRARY)
    return hits[0] if hits else None


def _preload(path: str) -> None:
    """Load ``path`` into the process, so that pynvml's ``dlopen("libnvidia-ml.so.1")`` gets
    this library (the dynamic loader matches an already loaded object by its SONAME), as
    go-nvml's ``WithLibraryPath`` does for upstream."""
    import ctypes

    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def from_nvml(library: str | None = None, reasons: list[str] | None = None) -> dict[str, Any] | None:
    """The host's GPUs through NVML, or None when nvidia-ml-py or the driver is absent (the
    reason is appended to ``reasons``). ``library``: the path of the ``libnvidia-ml.so.1`` to
    use (a driver root's); None lets pynvml load it by name."""
    why = reasons if reasons is not None else []
    try:
        import pynvml
    except ImportError:
        why.append("nvidia-ml-py (pynvml) is not installed")
        return None
    if library is not None:
        try:
            _preload(library)
        except OSError as exc:
            why.append(f"cannot load {escape(library)}: {escape(str(exc))}")
            return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        where = f" with {escape(library)}" if library else ""
        why.append(f"nvmlInit failed{where}: {escape(str(exc) or type(exc).__name__)}")
        return None
    try:

        def s(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            try:
                mig_enabled = pynvml.nvmlDeviceGetMigMode(h)[0] == 1
            except Exception:
                mig_enabled = False
            migs = []
            if mig_enabled:
                for j in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(h)):
                    try:
                        m = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
                    except Exception:
                        continue
                    name = s(pynvml.nvmlDeviceGetName(m))
                    migs.append(
                        {
                            "index": j,
                            "uuid": s(pynvml.nvmlDeviceGetUUID(m)),
                            "gpu_instance_id": pynvml.nvmlDeviceGetGpuInstanceId(m),
                            "compute_instance_id": pynvml.nvmlDeviceGetComputeInstanceId(m),
                            "profile": name.split("MIG ", 1)[-1],
                            "gfx": "+gfx" in name,
                        }
                    )
            pci = s(pynvml.nvmlDeviceGetPciInfo(h).busId)
            gpus.append(
                {
                    "index": i,
                    "minor": pynvml.nvmlDeviceGetMinorNumber(h),
                    "uuid": s(pynvml.nvmlDeviceGetUUID(h)),
                    "name": s(pynvml.nvmlDeviceGetName(h)),
                    "pci_bus_id": pci[4:] if len(pci) == 16 else pci,
                    "mig_enabled": mig_enabled,
                    "mig_devices": migs,
                }
            )
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        return _normalise(
            {
                "driver_version": s(pynvml.nvmlSystemGetDriverVersion()),
                "cuda_version": f"{cuda // 1000}.{cuda % 1000 // 10}",
                "gpus": gpus,
            },
            "nvml",
        )
    except Exception as exc:
        raise GpuctkError(f"NVML: {exc}") from None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def from_procfs(dev_root: str = "/") -> dict[str, Any]:
    """GPUs from ``/proc/driver/nvidia/gpus/*/information`` (MIG devices from the
    capabilities tree, without UUIDs), else from sysfs PCI devices with vendor 0x10de."""
    base = os.path.join(dev_root, "proc/driver/nvidia/gpus")
    gpus: list[dict[str, Any]] = []
    try:
        buses = sorted(os.listdir(base))
    except OSError:
        buses = []
    for bus in buses:
        info = parse_information(read_text(dev_root, f"/proc/driver/nvidia/gpus/{bus}/information") or "")
        try:
            minor = int(info.get("Device Minor", ""))
        except ValueError:
            continue
        gpus.append(
            {
                "minor": minor,
                "uuid": info.get("GPU UUID"),
                "name": info.get("Model"),
                "pci_bus_id": info.get("Bus Location", bus),
                "mig_devices": _procfs_migs(dev_root, minor),
            }
        )
    if not buses:
        gpus = _sysfs_gpus(dev_root)
    for i, g in enumerate(gpus):
        g["index"] = i
        g["mig_enabled"] = bool(g["mig_devices"])
    version = parse_nvrm_version(read_text(dev_root, "/proc/driver/nvidia/version") or "")
    return _normalise({"driver_version": version, "gpus": gpus}, f"procfs:{dev_root}")


def _procfs_migs(dev_root: str, minor: int) -> list[dict[str, Any]]:
    base = os.path.join(dev_root, f"proc/driver/nvidia/capabilities/gpu{minor}/mig")
    out: list[dict[str, Any]] = []
    try:
        gis = sorted((int(n[2:]), n) for n in os.listdir(base) if re.fullmatch(r"gi\d+", n))
    except OSError:
        return out
    for gi, gname in gis:
        try:
            cis = sorted(
                int(n[2:]) for n in os.listdir(os.path.join(base, gname)) if re.fullmatch(r"ci\d+", n)
            )
        except OSError:
            continue
        for ci in cis:
            out.append({"index": len(out), "uuid": None, "gpu_instance_id": gi, "compute_instance_id": ci})
    return out


def _sysfs_gpus(dev_root: str) -> list[dict[str, Any]]:
    base = os.path.join(dev_root, "sys/bus/pci/devices")
    out: list[dict[str, Any]] = []
    try:
        buses = sorted(os.listdir(base))
    except OSError:
        return out
    for bus in buses:
        vendor = (read_text(dev_root, f"/sys/bus/pci/devices/{bus}/vendor") or "").strip()
        cls = (read_text(dev_root, f"/sys/bus/pci/devices/{bus}/class") or "").strip()
        if vendor == "0x10de" and cls.startswith("0x03"):
            out.append({"minor": len(out), "uuid": None, "name": None, "pci_bus_id": bus, "mig_devices": []})
    return out


def select_inventory(
    spec: Any = None,
    *,
    dev_root: str = "/",
    driver_root: str = "/",
    root: DriverRoot | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The inventory for a generation: an explicit dict or fixture path, ``$GPUCTK_INVENTORY``,
    NVML, then procfs/sysfs under the dev root.

    NVML is asked whenever the dev root is the host's ``/`` (NVML talks to the running kernel),
    whatever the driver root: with a driver root other than ``/`` (``/run/nvidia/driver``,
    ``/usr/local/nvidia``) its ``libnvidia-ml.so.1`` is loaded by path, as upstream does
    (NVIDIA/nvidia-container-toolkit ``pkg/nvcdi/lib.go``). When NVML cannot be used the
    reason goes to ``warnings`` and procfs/sysfs answer. ``root``: the generation's
    DriverRoot (its library search paths); else one is made from ``driver_root``."""
    if isinstance(spec, dict):
        return _normalise(spec, "inline")
    path = spec or os.environ.get(ENV_INVENTORY)
    if path:
        return load_fixture(str(path))
    if os.path.abspath(dev_root) == "/":
        reasons: list[str] = []
        library = None
        if os.path.abspath(root.root if root is not None else driver_root) != "/":
            root = root or DriverRoot(driver_root)
            library = nvml_library(root)
            if library is None:
                reasons.append(f"no {NVML_LIBRARY} under the driver root {escape(root.root)}")
        inv = None if reasons else from_nvml(library, reasons)
        if inv is not None:
            return inv
        if warnings is not None:
            warnings.append(f"NVML not used ({'; '.join(reasons)}): GPU inventory from procfs/sysfs")
    return from_procfs(dev_root)
