"""Golden files: one flag, one rule.

``GPUCTK_UPDATE_GOLDEN=1`` (exactly ``1``) rewrites the golden files a run compares
against; any other value, ``0`` included, or no value, only compares. A missing golden
file is a failure, never silently created. Every golden test reads the flag here
(tests/core/test_test_rules.py checks that no test reads the variable itself).
"""

from __future__ import annotations

import os

UPDATE = os.environ.get("GPUCTK_UPDATE_GOLDEN") == "1"


def check_golden(path: str, text: str) -> None:
    """Compare `text` with the golden file at `path` (rewrite it first under GPUCTK_UPDATE_GOLDEN=1)."""
    if UPDATE:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    assert os.path.exists(path), f"{path}: no golden file (GPUCTK_UPDATE_GOLDEN=1 writes it; review the diff)"
    with open(path) as f:
        expected = f.read()
    assert text == expected, f"{path} differs from its golden file (GPUCTK_UPDATE_GOLDEN=1 regenerates)"
