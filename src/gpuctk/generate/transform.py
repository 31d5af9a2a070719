"""Spec transforms on plain CDI dicts: dedupe, simplify, sort, the merged ``all`` device and
the ``transform root`` path rewrite (NVIDIA/nvidia-container-toolkit ``pkg/nvcdi/transform/*``,
``pkg/nvcdi/transform/root/*``). The minimum version is the CDI library's
(``gpuctk.cdi.version.minimum_version_of``)."""

from __future__ import annotations

import json
from typing import Any


def _copy(obj: Any) -> Any:
    """Deep copy of plain JSON data (much faster than copy.deepcopy)."""
    return json.loads(json.dumps(obj))


EDIT_LISTS = ("env", "deviceNodes", "mounts", "hooks", "additionalGids")


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True)


def dedupe_edits(edits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in edits.items():
        if field in EDIT_LISTS and isinstance(value, list):
            seen: set[str] = set()
            items = []
            for item in value:
                k = _key(item)
                if k not in seen:
                    seen.add(k)
                    items.append(item)
            if field == "additionalGids":
                items = sorted(items)
            if items:
                out[field] = items
        elif value not in (None, [], {}):
            out[field] = value
    return out


def _depth_key(path: str) -> tuple[int, str]:
    return (len([p for p in path.split("/") if p]), path)


def sort_edits(edits: dict[str, Any]) -> dict[str, Any]:
    """Device nodes and mounts by number of container-path components, then by path;
    env and hooks keep insertion order."""
    out = dict(edits)
    if "deviceNodes" in out:
        out["deviceNodes"] = sorted(out["deviceNodes"], key=lambda n: _depth_key(n.get("path", "")))
    if "mounts" in out:
        out["mounts"] = sorted(out["mounts"], key=lambda m: _depth_key(m.get("containerPath", "")))
    return out


def simplify(spec: dict[str, Any]) -> dict[str, Any]:
    """Dedupe, drop device edits identical to common edits (unless that empties the
    device), sort devices by name and edits by path."""
    spec = _copy(spec)
    common = dedupe_edits(spec.get("containerEdits") or {})
    common_keys = {f: {_key(i) for i in common.get(f, [])} for f in EDIT_LISTS}
    devices = []
    for dev in spec.get("devices") or []:
        edits = dedupe_edits(dev.get("containerEdits") or {})
        reduced: dict[str, Any] = {}
        for field, value in edits.items():
            if field in EDIT_LISTS:
                kept = [i for i in value if _key(i) not in common_keys[field]]
                if kept:
                    reduced[field] = kept
            else:
                reduced[field] = value
        dev = {**dev, "containerEdits": sort_edits(reduced if reduced else edits)}
        devices.append(dev)
    spec["devices"] = sorted(devices, key=lambda d: d["name"])
    if common:
        spec["containerEdits"] = sort_edits(common)
    else:
        spec.pop("containerEdits", None)
    return spec


def merged_device(devices: list[dict[str, Any]], name: str = "all") -> dict[str, Any] | None:
    """The union of all device edits as one device (None when there is nothing to merge)."""
    if not devices or any(d["name"] == name for d in devices):
        return None
    merged: dict[str, list[Any]] = {}
    for dev in devices:
        for field, value in (dev.get("containerEdits") or {}).items():
            if field in EDIT_LISTS:
                merged.setdefault(field, []).extend(_copy(value))
    return {"name": name, "containerEdits": sort_edits(dedupe_edits(merged))}


def _swap_prefix(path: str, old: str, new: str) -> str:
    """Replace root ``old`` by ``new`` only on a path-component boundary."""
    old_n = old.rstrip("/") or "/"
    if old_n == "/":
        return path if not path.startswith("/") else (new.rstrip("/") + path if new.rstrip("/") else path)
    if path == old_n:
        return new.rstrip("/") or "/"
    if path.startswith(old_n + "/"):
        return (new.rstrip("/") or "") + path[len(old_n) :]
    return path


def _swap_arg(arg: str, old: str, new: str) -> str:
    if "::" in arg:
        a, _, b = arg.partition("::")
        return _swap_prefix(a, old, new) + "::" + _swap_prefix(b, old, new)
    return _swap_prefix(arg, old, new)


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of an edit list (hand-written input specs may hold anything)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _swap_field(obj: dict[str, Any], field: str, old: str, new: str, default: Any = None) -> None:
    value = obj.get(field) or default
    if isinstance(value, str):
        obj[field] = _swap_prefix(value, old, new)


def _swap_args(hook: dict[str, Any], old: str, new: str) -> None:
    args = hook.get("args")
    if isinstance(args, list) and args and all(isinstance(a, str) for a in args):
        hook["args"] = [args[0]] + [_swap_arg(a, old, new) for a in args[1:]]


def transform_root(
    spec: dict[str, Any], from_root: str, to_root: str, relative_to: str = "host"
) -> dict[str, Any]:
    """Rewrite root ``from_root`` to ``to_root`` in host paths (``host``) or container
    paths (``container``). The spec is neither simplified nor re-versioned. Fields of
    the wrong type are left as they are (for the validator to report), never crash."""
    spec = _copy(spec)
    if from_root.rstrip("/") == to_root.rstrip("/"):
        return spec
    edit_sets = [spec.get("containerEdits")] + [d.get("containerEdits") for d in _dicts(spec.get("devices"))]
    host = relative_to == "host"
    for edits in edit_sets:
        if not isinstance(edits, dict):
            continue
        for node in _dicts(edits.get("deviceNodes")):
            if host:
                _swap_field(node, "hostPath", from_root, to_root, default=node.get("path"))
            else:
                _swap_field(node, "path", from_root, to_root)
        for mount in _dicts(edits.get("mounts")):
            _swap_field(mount, "hostPath" if host else "containerPath", from_root, to_root)
        for hook in _dicts(edits.get("hooks")):
            start = hook.get("hookName") == "startContainer"
            container_hook = start or hook.get("hookName") == "createContainer"
            if host != start:  # host: every hook path but startContainer's; container: only it
                _swap_field(hook, "path", from_root, to_root)
            if host != container_hook:
                _swap_args(hook, from_root, to_root)
    return spec
