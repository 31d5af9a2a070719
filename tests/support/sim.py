"""Simulated GPU nodes for tests in any area (owned by the discovery/generation area).

``SimNodes(base).get(profile)`` creates each profile's node once under ``base``.
``check_spec_against_node(spec)`` runs the independent checks every generated spec
must pass: mount host paths exist, device nodes match the host node, hook argv parse.
"""

from __future__ import annotations

import argparse
import os
import stat
from typing import Any

HOOK_FLAGS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "create-symlinks": [("--link", {"action": "append", "required": True})],
    "update-ldcache": [("--folder", {"action": "append"}), ("--ldconfig-path", {})],
    "enable-cuda-compat": [
        ("--host-driver-version", {}),
        ("--host-cuda-version", {}),
        ("--cuda-compat-container-root", {}),
    ],
    "disable-device-node-modification": [],
    "update-application-profile": [],
    "chmod": [("--mode", {"required": True}), ("--path", {"action": "append", "required": True})],
}


class SimNodes:
    def __init__(self, base: str) -> None:
        self.base = base
        self.nodes: dict[str, Any] = {}

    def get(self, profile: str):
        if profile not in self.nodes:
            from gpuctk.sim import create_node

            self.nodes[profile] = create_node(profile, os.path.join(self.base, profile))
        return self.nodes[profile]


class _Raise(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def parse_hook_argv(hook: dict[str, Any]) -> tuple[str, argparse.Namespace]:
    args = hook["args"]
    assert args[0] == os.path.basename(hook["path"]), args
    rest = args[1:]
    if args[0] in ("nvidia-ctk", "gpuctk"):
        assert rest[0] == "hook", args
        rest = rest[1:]
    name = rest[0]
    assert name in HOOK_FLAGS, f"unknown hook {name}"
    p = _Raise(prog=name, add_help=False)
    for flag, kw in HOOK_FLAGS[name]:
        p.add_argument(flag, **kw)
    ns = p.parse_args(rest[1:])
    for link in getattr(ns, "link", None) or []:
        parts = link.split("::")
        assert len(parts) == 2 and all(parts), link
    return name, ns


def _all_edits(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec.get("containerEdits") or {}] + [
        d.get("containerEdits") or {} for d in spec.get("devices") or []
    ]


def check_spec_against_node(spec: dict[str, Any]) -> None:
    """Independent checks on a spec whose host paths are real (not transformed)."""
    import json

    for edits in _all_edits(spec):
        for m in edits.get("mounts") or []:
            assert os.path.lexists(m["hostPath"]), f"mount hostPath missing: {m['hostPath']}"
        for n in edits.get("deviceNodes") or []:
            host = n.get("hostPath") or n["path"]
            st = os.stat(host)
            if stat.S_ISCHR(st.st_mode):
                major, minor, mode = os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode)
            else:
                with open(host) as f:
                    d = json.load(f)["gpuctk_sim_char_device"]
                major, minor, mode = d["major"], d["minor"], d["mode"]
            assert (n.get("major"), n.get("minor")) == (major, minor), f"{host}: {n} != {major}:{minor}"
            assert n.get("fileMode") == mode, host
        for h in edits.get("hooks") or []:
            assert h["hookName"] == "createContainer"
            assert h["env"] == ["NVIDIA_CTK_DEBUG=false"]
            parse_hook_argv(h)
