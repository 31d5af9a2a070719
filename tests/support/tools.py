"""Finding real components for integration tests; the one place a test may skip.

Under CI=true a missing component is a failure, never a skip: CI must prove the
integration paths, and a silently skipped test proves nothing. Every environment
skip in tests/ goes through `missing()` (or the `require_*` helpers built on it);
tests/core/test_test_rules.py fails on any other skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required component missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """`missing(reason)` unless `condition` holds (the environment has what the test needs)."""
    if not condition:
        missing(reason)


def require_tool(name: str) -> str:
    """Absolute path of an executable, or fail/skip."""
    for d in (
        os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ).split(":"):
        if d:
            p = os.path.join(d, name)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    missing(f"{name} not found (make test installs it when run as root)")


def require_root() -> None:
    if os.geteuid() != 0:
        missing("needs root (runc, mknod, mounts)")


def venv_script(name: str) -> str:
    """Path of one of gpuctk's console scripts in the running interpreter's environment."""
    import sys

    cand = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(cand):
        return cand
    found = shutil.which(name)
    if found:
        return found
    missing(f"console script {name} is not installed (pip install -e .)")
