"""Inject CDI devices into a raw OCI spec for the gVisor tests.

A small stand-in for the CDI library's injection, with the reference semantics (env keys replaced
in place, device nodes, bind mounts, hooks by hookName), so these tests do not depend on another
area's code. ``append_env=True`` mimics engines that append env entries instead (old Docker CDI path), which is
what makes the D2 leak possible.
"""

from __future__ import annotations

import copy


def _apply(oci: dict, edits: dict, append_env: bool) -> None:
    process = oci.setdefault("process", {})
    env = process.setdefault("env", [])
    for entry in edits.get("env", []):
        key = entry.split("=", 1)[0] + "="
        idx = [i for i, e in enumerate(env) if e.startswith(key)]
        if idx and not append_env:
            env[idx[0]] = entry
            for i in reversed(idx[1:]):
                del env[i]
        else:
            env.append(entry)
    linux = oci.setdefault("linux", {})
    for node in edits.get("deviceNodes", []):
        dev = {
            "path": node["path"],
            "type": node.get("type", "c"),
            "major": node.get("major", 0),
            "minor": node.get("minor", 0),
        }
        for k in ("fileMode", "uid", "gid"):
            if k in node:
                dev[k] = node[k]
        devices = linux.setdefault("devices", [])
        devices[:] = [d for d in devices if d["path"] != dev["path"]] + [dev]
    for m in edits.get("mounts", []):
        oci.setdefault("mounts", []).append(
            {
                "destination": m["containerPath"],
                "type": m.get("type", "bind"),
                "source": m["hostPath"],
                "options": m.get("options", []),
            }
        )
    for h in edits.get("hooks", []):
        hook = {k: v for k, v in h.items() if k != "hookName"}
        oci.setdefault("hooks", {}).setdefault(h["hookName"], []).append(hook)
    if edits.get("additionalGids"):
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        user["additionalGids"] = sorted(set(user.get("additionalGids", [])) | set(edits["additionalGids"]))


def inject(oci: dict, cdi_spec: dict, names: list[str], *, append_env: bool = False) -> dict:
    """A copy of ``oci`` with the named devices (bare names) of ``cdi_spec`` and its common edits."""
    out = copy.deepcopy(oci)
    by_name = {d["name"]: d for d in cdi_spec["devices"]}
    for n in names:
        _apply(out, by_name[n]["containerEdits"], append_env)
    _apply(out, cdi_spec.get("containerEdits", {}), append_env)
    return out
