"""The node's decision record: what ``--cdi auto`` decided and applied, for later readers.

``gpuctk runtime configure --cdi auto`` and ``gpuctk install --cdi auto`` write it;
``gpuctk doctor``, ``gpuctk snapshot`` and ``gpuctk k8s manifests --node-status`` read it
instead of guessing the injection path again. It lives beside the GPU Operator's own
readiness files (``/run/nvidia/validations``, where NVIDIA/gpu-operator
``cmd/nvidia-validator/main.go`` writes ``toolkit-ready``), so it is gone after a reboot
exactly like those: the engine config stays, and a new ``--cdi auto`` run writes it again.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gpuctk.engines.decision import Decision
from gpuctk.errors import GpuctkError
from gpuctk.fileio import atomic_write

STATUS_DIR = "/run/nvidia/validations"
STATUS_NAME = "gpuctk-cdi-decision.json"
DEFAULT_STATUS_FILE = os.path.join(STATUS_DIR, STATUS_NAME)
KIND = "GpuctkCDIDecision"


def status_file(root: str = "/") -> str:
    return os.path.join(root, DEFAULT_STATUS_FILE.lstrip("/"))


def render(
    *,
    engine: str,
    version: str | None,
    decision: Decision,
    config: str,
    drop_in: str = "",
    runtime_name: str = "nvidia",
    toolkit_config: str | None = None,
) -> str:
    doc: dict[str, Any] = {
        "kind": KIND,
        "version": 1,
        "engine": engine,
        "engine_version": version,
        "engine_config": config,
        "drop_in": drop_in,
        "runtime_name": runtime_name,
        "toolkit_config": toolkit_config,
        "decision": decision.as_dict(),
    }
    return json.dumps(doc, indent=2) + "\n"


def write(path: str, text: str) -> str:
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        atomic_write(path, text, 0o644)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write the decision record: {exc.strerror or exc}") from None
    return f"{path}: decision recorded"


def read(path: str) -> dict[str, Any] | None:
    """The record, or None when there is none; a damaged one is a one-line error."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(1 << 20))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GpuctkError(f"{path}: cannot read the decision record: {reason}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("decision"), dict):
        raise GpuctkError(f"{path}: field kind: not a {KIND} record")
    return data


def remove(path: str) -> str | None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot remove: {exc.strerror or exc}") from None
    return f"{path}: removed"
