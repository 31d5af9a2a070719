"""Tegra/Jetson CSV mount-spec files (reference §3.1)."""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

TYPES = ("dev", "lib", "sym", "dir")


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
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            entries = parse_csv(f.read(16 * 1024 * 1024))
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot read CSV file: {exc.strerror}") from None
    if not entries:
        raise GpuctkError(f"{path}: CSV file is empty")
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
