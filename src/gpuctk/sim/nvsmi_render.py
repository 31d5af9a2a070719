"""Render `nvidia-smi -L` and `nvidia-smi -q -x` for a simulated inventory.

The XML is the matching real capture (``data/qx-*.xml``) with the node's facts
substituted into each GPU block, so every field nobody simulates keeps a real value.
"""

from __future__ import annotations

import os
import re
from typing import Any

_DATA = os.path.join(os.path.dirname(__file__), "data")


def render_list(inv: dict[str, Any]) -> str:
    if not inv["gpus"]:
        return "No devices were found\n"
    lines = []
    for gpu in inv["gpus"]:
        lines.append(f"GPU {gpu['index']}: {gpu['name']} (UUID: {gpu['uuid']})")
        for mig in gpu.get("mig_devices", []):
            lines.append(f"  MIG {mig['profile']:<11} Device {mig['index']:>2}: (UUID: {mig['uuid']})")
    return "\n".join(lines) + "\n"


def _bus_upper(bus: str) -> str:
    dom, rest = bus.split(":", 1)
    return (dom.rjust(8, "0") + ":" + rest).upper()


def _sub(block: str, tag: str, value: str) -> str:
    return re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", block, count=1)


def _mig_xml(gpu: dict[str, Any]) -> tuple[str, str]:
    if not gpu.get("mig_enabled"):
        mode = "Disabled"
        devices = "\t\t<mig_devices>\n\t\t\tNone\n\t\t</mig_devices>"
    else:
        mode = "Enabled"
        parts = []
        for mig in gpu["mig_devices"]:
            slices = int(mig["profile"].split("g.", 1)[0])
            mem_gb = int(mig["profile"].split(".", 1)[1].rstrip("gb"))
            parts.append(
                "\t\t\t<mig_device>\n"
                f"\t\t\t\t<index>{mig['index']}</index>\n"
                f"\t\t\t\t<gpu_instance_id>{mig['gpu_instance_id']}</gpu_instance_id>\n"
                f"\t\t\t\t<compute_instance_id>{mig['compute_instance_id']}</compute_instance_id>\n"
                "\t\t\t\t<device_attributes>\n\t\t\t\t\t<shared>\n"
                f"\t\t\t\t\t\t<multiprocessor_count>{14 * slices}</multiprocessor_count>\n"
                f"\t\t\t\t\t\t<copy_engine_count>{slices}</copy_engine_count>\n"
                "\t\t\t\t\t</shared>\n\t\t\t\t</device_attributes>\n"
                "\t\t\t\t<fb_memory_usage>\n"
                f"\t\t\t\t\t<total>{mem_gb * 1024 - 256} MiB</total>\n"
                "\t\t\t\t\t<used>13 MiB</used>\n"
                "\t\t\t\t</fb_memory_usage>\n"
                "\t\t\t</mig_device>"
            )
        devices = "\t\t<mig_devices>\n" + "\n".join(parts) + "\n\t\t</mig_devices>"
    mode_xml = (
        f"\t\t<mig_mode>\n\t\t\t<current_mig>{mode}</current_mig>\n"
        f"\t\t\t<pending_mig>{mode}</pending_mig>\n\t\t</mig_mode>"
    )
    return mode_xml, devices


def render_xml(inv: dict[str, Any], template: str | None) -> str:
    """The `nvidia-smi -q -x` document for ``inv``, built on capture ``template``."""
    with open(os.path.join(_DATA, template or "qx-h100.xml"), encoding="utf-8") as f:
        doc = f.read()
    head, _, rest = doc.partition("\t<gpu id=")
    blocks = re.findall(r"\t<gpu id=.*?</gpu>\n", "\t<gpu id=" + rest, flags=re.S)
    tail = rest[rest.rfind("</gpu>") + len("</gpu>\n") :]
    head = _sub(head, "driver_version", inv["driver_version"])
    head = _sub(head, "cuda_version", inv["cuda_version"])
    head = _sub(head, "attached_gpus", str(len(inv["gpus"])))
    out = []
    for i, gpu in enumerate(inv["gpus"]):
        block = blocks[i % len(blocks)]
        bus = _bus_upper(gpu["pci_bus_id"] or "0000:00:00.0")
        block = re.sub(r'<gpu id="[^"]*">', f'<gpu id="{bus}">', block, count=1)
        block = _sub(block, "product_name", gpu["name"])
        block = _sub(block, "uuid", gpu["uuid"])
        block = _sub(block, "minor_number", str(gpu["minor"]))
        block = _sub(block, "pci_bus_id", bus)
        block = _sub(block, "pci_bus", bus.split(":")[1])
        block = _sub(block, "gsp_firmware_version", inv["driver_version"])
        mode_xml, devices_xml = _mig_xml(gpu)
        block = re.sub(r"\t\t<mig_mode>.*?</mig_mode>", mode_xml, block, count=1, flags=re.S)
        block = re.sub(r"\t\t<mig_devices>.*?</mig_devices>", devices_xml, block, count=1, flags=re.S)
        out.append(block)
    return head + "".join(out) + tail


def render_script(inv: dict[str, Any], template: str | None) -> str:
    """A POSIX sh `nvidia-smi` (runs in busybox) answering -L, -q -x and the plain call."""
    listing = render_list(inv)
    xml = render_xml(inv, template) if inv["gpus"] else ""
    status = "0" if inv["gpus"] else "6"
    return (
        "#!/bin/sh\n"
        "# gpuctk simulated nvidia-smi: static answers consistent with the simulated node\n"
        'case "$*" in\n'
        "  -L|--list-gpus)\n"
        f"    cat <<'GPUCTK_EOF'\n{listing}GPUCTK_EOF\n"
        f"    exit {status} ;;\n"
        "  '-q -x'|'-x -q'|'--query --xml-format'|-qx)\n"
        + (f"    cat <<'GPUCTK_EOF'\n{xml}GPUCTK_EOF\n" if xml else "    echo 'No devices were found'\n")
        + f"    exit {status} ;;\n"
        "  --version)\n"
        f"    echo 'NVIDIA-SMI version  : {inv['driver_version']}'\n"
        f"    echo 'DRIVER version      : {inv['driver_version']}'\n"
        f"    echo 'CUDA Version        : {inv['cuda_version']}'\n"
        "    exit 0 ;;\n"
        "  *)\n"
        f"    echo 'gpuctk simulated nvidia-smi: Driver Version: {inv['driver_version']}   CUDA Version: {inv['cuda_version']}'\n"
        f"    cat <<'GPUCTK_EOF'\n{listing}GPUCTK_EOF\n"
        f"    exit {status} ;;\n"
        "esac\n"
    )
