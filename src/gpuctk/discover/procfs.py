"""Parsers for the driver's procfs files (pure functions over text) and readers under a root."""

from __future__ import annotations

import os
import re


def parse_proc_devices(text: str) -> dict[str, int]:
    """``/proc/devices`` character section -> {name: major}. Bad lines are skipped."""
    out: dict[str, int] = {}
    in_chars = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Character devices"):
            in_chars = True
            continue
        if s.startswith("Block devices"):
            in_chars = False
            continue
        if not in_chars:
            continue
        parts = s.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit() and parts[1]:
            out.setdefault(parts[1].strip(), int(parts[0]))
    return out


def nvidia_major(devices: dict[str, int]) -> int | None:
    """The GPU major: ``nvidia`` or, on older drivers, ``nvidia-frontend``."""
    return devices.get("nvidia", devices.get("nvidia-frontend"))


_MIG_LINE = re.compile(r"^(config|monitor|gpu(\d+)/gi(\d+)/access|gpu(\d+)/gi(\d+)/ci(\d+)/access)\s+(\d+)$")


def parse_mig_minors(text: str) -> dict[str, int]:
    """``/proc/driver/nvidia-caps/mig-minors`` -> {"gpu0/gi1/access": minor, "config": 1, ...}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _MIG_LINE.match(line.strip())
        if m:
            out[m.group(1)] = int(m.group(7))
    return out


def parse_information(text: str) -> dict[str, str]:
    """``/proc/driver/nvidia/gpus/<bus>/information`` -> {"Model": ..., "GPU UUID": ..., ...}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


_NVRM = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)")


def parse_nvrm_version(text: str) -> str | None:
    """Driver version from ``/proc/driver/nvidia/version``."""
    m = _NVRM.search(text)
    return m.group(1) if m else None


def read_text(root: str, path: str, limit: int = 4 * 1024 * 1024) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None
