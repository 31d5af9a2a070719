"""The argv of a CDI hook entry, in the shape upstream generators emit (NVIDIA/nvidia-container-toolkit
``internal/discover/hooks.go``).

``nvidia-ctk`` (and ``gpuctk``) take the hook name after a ``hook`` sub-command; a
dedicated hook binary (``nvidia-cdi-hook``, ``gpuctk-hook``) takes it directly.
"""

from __future__ import annotations

import os

# binaries whose hooks live under a `hook` sub-command
MULTI_COMMAND_BINARIES = ("nvidia-ctk", "gpuctk")


def hook_argv(hook_path: str, name: str, args: list[str]) -> list[str]:
    """``[<basename>, name, *args]``, or ``[<basename>, "hook", name, *args]`` for
    nvidia-ctk / gpuctk; an empty path gives ``nvidia-cdi-hook``."""
    base = os.path.basename(hook_path)
    if base in MULTI_COMMAND_BINARIES:
        return [base, "hook", name, *args]
    return [base or "nvidia-cdi-hook", name, *args]
