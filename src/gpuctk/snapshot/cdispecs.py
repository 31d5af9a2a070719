"""CDI specs on a node: present, valid, and stale or not.

Every spec is read by the CDI library (``gpuctk.cdi.model.inspect_spec_file``): the same size
cap, alias guard, YAML scalar rules and file-name rule (``.json``/``.yaml`` only) as the
runtime, so doctor passes exactly the specs the runtime uses.

Stale means the spec no longer matches the node: a host path it mounts or a device node
it creates is gone, or the driver libraries it names are from another driver version
than the one loaded (both happen after a driver upgrade without regenerating the spec).
"""

from __future__ import annotations

import os
import re
from typing import Any

from gpuctk.cdi.errors import escape, strip_source
from gpuctk.cdi.model import inspect_spec_file
from gpuctk.cdi.registry import DEFAULT_SPEC_DIRS, is_spec_file_name, trust_problem

_DRIVER_LIB = re.compile(r"/lib(?:cuda|nvidia-ml|nvidia-ptxjitcompiler)\.so\.(\d+\.\d+(?:\.\d+)?)$")


def _under(root: str, path: str) -> str:
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def _mappings(value: Any) -> list[dict[str, Any]]:
    """The mappings in a list field; anything else (an invalid spec) contributes nothing."""
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _edits(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if isinstance(spec.get("containerEdits"), dict):
        out.append(spec["containerEdits"])
    for dev in _mappings(spec.get("devices")):
        if isinstance(dev.get("containerEdits"), dict):
            out.append(dev["containerEdits"])
    return out


def spec_driver_versions(spec: dict[str, Any]) -> list[str]:
    found = set()
    for e in _edits(spec):
        for m in _mappings(e.get("mounts")):
            match = _DRIVER_LIB.search(str(m.get("hostPath", "")))
            if match:
                found.add(match.group(1))
    return sorted(found)


def missing_host_paths(spec: dict[str, Any], root: str = "/") -> list[str]:
    missing: list[str] = []
    for e in _edits(spec):
        paths = [str(m.get("hostPath", "")) for m in _mappings(e.get("mounts"))]
        paths += [str(d.get("hostPath") or d.get("path", "")) for d in _mappings(e.get("deviceNodes"))]
        for p in paths:
            if p.startswith("/") and not os.path.lexists(_under(root, p)) and p not in missing:
                missing.append(p)
    return missing


def check_specs(
    root: str = "/",
    spec_dirs: tuple[str, ...] | list[str] = DEFAULT_SPEC_DIRS,
    driver_version: str | None = None,
) -> list[dict[str, Any]]:
    """One entry per spec file found (``.json``/``.yaml``, as the CDI library scans), in
    directory order. A spec the runtime (as root) would not trust is reported invalid."""
    results = []
    for d in spec_dirs:
        full = _under(root, d)
        try:
            names = sorted(os.listdir(full))
        except OSError:
            continue
        for name in names:
            if not is_spec_file_name(name):
                continue
            path = os.path.join(d, name)
            host_path = os.path.join(full, name)
            if os.path.isdir(host_path) and not os.path.islink(host_path):
                continue  # a sub-directory: skipped like the CDI library
            entry: dict[str, Any] = {
                "path": path,
                "kind": None,
                "devices": [],
                "valid": None,
                "errors": [],
                "stale": False,
                "stale_reasons": [],
            }
            canonical, file_error, problems = inspect_spec_file(host_path)
            if file_error is not None:
                entry.update(valid=False, errors=[f"cannot parse: {strip_source(file_error, host_path)}"])
                results.append(entry)
                continue
            if canonical is None:
                entry.update(valid=False, errors=[f"cannot parse: {escape(p)}" for p in problems])
                results.append(entry)
                continue
            doc = canonical
            entry["kind"] = doc.get("kind")
            entry["devices"] = [str(dv.get("name")) for dv in _mappings(doc.get("devices"))]
            untrusted = trust_problem(host_path, full, top=root or "/")
            if untrusted:
                problems = [*problems, f"not used by the runtime running as root: {untrusted}"]
            entry["valid"] = not problems
            entry["errors"] = [escape(p) for p in problems]
            missing = missing_host_paths(doc, root)
            if missing:
                entry["stale"] = True
                shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
                entry["stale_reasons"].append(f"host paths missing: {shown}")
            versions = spec_driver_versions(doc)
            entry["driver_versions"] = versions
            if driver_version and versions and driver_version not in versions:
                entry["stale"] = True
                entry["stale_reasons"].append(
                    f"spec names driver {', '.join(versions)} but the loaded driver is {driver_version}"
                )
            results.append(entry)
    return results
