"""Tegra/Jetson CSV mount-spec files (NVIDIA/nvidia-container-toolkit
``internal/platform-support/tegra/csv/{csv,mount_spec}.go``).

:func:`list_csv_dir` runs on the runtime shim's create path (the JIT cache key of csv mode):
this module imports only ``os`` at load time.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

TYPES = ("dev", "lib", "sym", "dir")
MAX_CSV_BYTES = 4 << 20  # a Jetson's l4t.csv is a few KiB


class SkippableCSVError(GpuctkError):
    """A CSV file upstream skips with a warning (missing, unreadable, no entries); any other
    GpuctkError from :func:`load_csv` (a FIFO, a device, a huge file, a NUL byte) is bad input."""


def parse_csv(text: str) -> list[tuple[str, str]]:
    """(type, path) entries; lines with an unknown type, no comma or an empty path are skipped."""
    out = []
    for line in text.splitlines():
        kind, sep, path = line.partition(",")
        kind, path = kind.strip(), path.strip()
        if sep and kind in TYPES and path:
            out.append((kind, path))
    return out


def load_csv(path: str) -> list[tuple[str, str]]:
    """The entries of a CSV mount-spec file: a regular file, at most MAX_CSV_BYTES, no NUL."""
    from gpuctk.cdi.errors import escape
    from gpuctk.discover.readfile import read_regular

    if not os.path.lexists(path):
        raise SkippableCSVError(f"{escape(path)}: cannot read CSV file: not found")
    try:
        os.stat(path)
    except OSError as exc:
        raise SkippableCSVError(f"{escape(path)}: cannot read CSV file: {exc.strerror or exc}") from None
    if not os.access(path, os.R_OK):
        raise SkippableCSVError(f"{escape(path)}: cannot read CSV file: Permission denied")
    data = read_regular(path, "CSV file", MAX_CSV_BYTES)
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise GpuctkError(f"{escape(path)}: line {line}: NUL byte in CSV file")
    entries = parse_csv(data.decode("utf-8", "replace"))
    if not entries:
        raise SkippableCSVError(f"{escape(path)}: CSV file is empty")
    return entries


def list_csv_dir(directory: str) -> list[str]:
    """``*.csv`` files (case-insensitive, not recursive, not a file named ``.csv``), sorted."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        os.path.join(directory, n)
        for n in names
        if n.lower().endswith(".csv") and n.lower() != ".csv" and os.path.isfile(os.path.join(directory, n))
    ]
