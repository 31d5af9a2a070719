"""Parse `nvidia-smi -q -x` output into plain data (stdlib only, safe XML).

The XML is produced by the driver but may reach us from a file a user points at, so
parsing refuses DTD internal subsets and entity declarations (no billion-laughs or
external entities) and never raises anything but GpuctkError. The document's
``<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_vNN.dtd">`` line names an external DTD
that is never fetched. Old (v10-v12) and new (v13+) layouts differ only in fields this
parser treats as optional.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from gpuctk.cdi.errors import escape
from gpuctk.errors import GpuctkError

_FORBIDDEN = re.compile(rb"<!ENTITY|<!DOCTYPE[^>]*\[", re.IGNORECASE)
# Bounds for a hostile document (a real one for 8 GPUs with MIG is ~100 KiB, ~5000 elements,
# 6 levels deep): parsing stops with one line past any of them.
_MAX_BYTES = 16 * 1024 * 1024
MAX_ELEMENTS = 500_000
MAX_DEPTH = 64
MAX_GPUS = 1024


def _text(elem: ET.Element | None, path: str) -> str | None:
    if elem is None:
        return None
    found = elem.find(path)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value if value and value != "N/A" else None


def _int(value: str | None) -> int | None:
    if value is None or len(value) > 20:  # no real field is longer; and int() caps digits
        return None
    try:
        return int(value, 0) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def _mig_devices(gpu: ET.Element) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    container = gpu.find("mig_devices")
    if container is None:
        return out
    for mig in container.findall("mig_device"):
        shared = mig.find("device_attributes/shared")
        out.append(
            {
                "index": _int(_text(mig, "index")),
                "uuid": _text(mig, "uuid"),
                "gpu_instance_id": _int(_text(mig, "gpu_instance_id")),
                "compute_instance_id": _int(_text(mig, "compute_instance_id")),
                "profile": _text(mig, "profile") or _text(mig, "mig_profile"),
                "multiprocessor_count": _int(_text(shared, "multiprocessor_count")),
                "memory_total": _text(mig, "fb_memory_usage/total"),
            }
        )
    return out


def _gpu(index: int, gpu: ET.Element) -> dict[str, Any]:
    bus_id = _text(gpu, "pci/pci_bus_id") or gpu.get("id")
    return {
        "index": index,
        "uuid": _text(gpu, "uuid"),
        "name": _text(gpu, "product_name"),
        "brand": _text(gpu, "product_brand"),
        "architecture": _text(gpu, "product_architecture"),
        "pci_bus_id": bus_id,
        "pci_device_id": _text(gpu, "pci/pci_device_id"),
        "minor_number": _int(_text(gpu, "minor_number")),
        "mig_mode": _text(gpu, "mig_mode/current_mig"),
        "persistence_mode": _text(gpu, "persistence_mode"),
        "serial": _text(gpu, "serial"),
        "vbios_version": _text(gpu, "vbios_version"),
        "memory_total": _text(gpu, "fb_memory_usage/total"),
        "mig_devices": _mig_devices(gpu),
    }


def _bounded_parse(raw: bytes) -> ET.Element:
    """The document's root, parsed incrementally with caps on elements and depth."""
    parser: Any = ET.XMLPullParser(events=("start", "end"))
    count = depth = 0
    root: ET.Element | None = None
    try:
        for off in range(0, max(len(raw), 1), 1 << 16):
            parser.feed(raw[off : off + (1 << 16)])
            for event, elem in parser.read_events():
                if event == "start":
                    if root is None:
                        root = elem
                    count += 1
                    depth += 1
                    if count > MAX_ELEMENTS:
                        raise GpuctkError(f"nvidia-smi XML: more than {MAX_ELEMENTS} elements")
                    if depth > MAX_DEPTH:
                        raise GpuctkError(f"nvidia-smi XML: nested more than {MAX_DEPTH} levels")
                else:
                    depth -= 1
        parser.close()
    except ET.ParseError as exc:
        raise GpuctkError(f"nvidia-smi XML: malformed document: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # odd encodings
        raise GpuctkError(f"nvidia-smi XML: unreadable document: {type(exc).__name__}") from None
    if root is None:
        raise GpuctkError("nvidia-smi XML: empty document")
    return root


def parse_nvidia_smi_xml(data: str | bytes) -> dict[str, Any]:
    """Return ``{driver_version, cuda_version, attached_gpus, dtd, gpus: [...]}``.

    Raises GpuctkError on malformed or unsafe XML, or a document that is not an
    ``nvidia_smi_log``.
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    if len(raw) > _MAX_BYTES:
        raise GpuctkError("nvidia-smi XML: document too large")
    if _FORBIDDEN.search(raw):
        raise GpuctkError("nvidia-smi XML: DTD internal subsets and entity declarations are not allowed")
    root = _bounded_parse(raw)
    if root.tag != "nvidia_smi_log":
        raise GpuctkError(
            f"nvidia-smi XML: root element is <{escape(root.tag[:64])}>, expected <nvidia_smi_log>"
        )
    dtd = re.search(rb'<!DOCTYPE\s+nvidia_smi_log\s+SYSTEM\s+"([^"]+)"', raw)
    found = root.findall("gpu")
    if len(found) > MAX_GPUS:
        raise GpuctkError(f"nvidia-smi XML: {len(found)} <gpu> elements, more than {MAX_GPUS}")
    gpus = [_gpu(i, g) for i, g in enumerate(found)]
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": _text(root, "cuda_version"),
        "attached_gpus": _int(_text(root, "attached_gpus")),
        "dtd": dtd.group(1).decode("ascii", "replace") if dtd else None,
        "gpus": gpus,
    }
