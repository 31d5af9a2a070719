"""Semantic validation of a canonical spec dict (after decoding).

Rules and message texts follow the reference (``pkg/cdi``, ``pkg/parser``), except where
gpuctk is deliberately stricter (see docs/cdi.md): container paths must be absolute and
annotation keys follow the Kubernetes rules for every input format. Unlike the reference,
which stops at the first error, every problem is reported with its field path.
"""

from __future__ import annotations

from gpuctk.cdi import names
from gpuctk.cdi.version import minimum_version_of, version_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VALID_HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_HOOK_NAMES = frozenset(VALID_HOOK_NAMES)
_NODE_TYPES = frozenset(["", "b", "c", "u", "p"])
_PERMS = frozenset("rwm")
# Annotation key grammar, checked by hand (``re`` is too slow to import on the runtime's path):
# name part  [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?
# prefix     a DNS subdomain: labels [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by "."
_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_INNER = _ALNUM | frozenset("-_.")
_LABEL_INNER = _LOWER_ALNUM | frozenset("-")


def _is_word(s: str, ends: frozenset[str], inner: frozenset[str]) -> bool:
    return bool(s) and s[0] in ends and s[-1] in ends and all(c in inner for c in s)


def _is_annotation_name(name: str) -> bool:
    return _is_word(name, _ALNUM, _NAME_INNER)


def _is_dns_subdomain(prefix: str) -> bool:
    return all(_is_word(label, _LOWER_ALNUM, _LABEL_INNER) for label in prefix.split("."))


MAX_ANNOTATIONS_SIZE = 256 * 1024


def env_problem(entry: str) -> str | None:
    if entry.find("=") < 1:
        return f'invalid environment variable "{entry}"'
    return None


def validate_spec(spec: dict[str, Any]) -> list[str]:
    """Every ``field: message`` problem of a canonical spec dict (empty = valid)."""
    problems: list[str] = []
    declared = spec.get("cdiVersion", "")
    vp = version_problem(declared, minimum_version_of(spec))
    if vp:
        problems.append(f"cdiVersion: {vp}")
    kind = spec.get("kind", "")
    vendor, cls = names.parse_qualifier(kind)
    err = names.vendor_error(vendor) or names.class_error(cls)
    if err:
        problems.append(f"kind: {err}")
    problems.extend(annotations_problems(spec.get("annotations"), "annotations"))
    problems.extend(edits_problems(spec.get("containerEdits") or {}, "containerEdits"))
    seen: dict[str, int] = {}
    devices = spec.get("devices") or []
    for i, dev in enumerate(devices):
        path = f"devices[{i}]"
        name = dev.get("name", "")
        err = names.device_name_error(name)
        if err:
            problems.append(f"{path}.name: {err}")
        problems.extend(annotations_problems(dev.get("annotations"), f"{path}.annotations"))
        edits = dev.get("containerEdits") or {}
        if not edits:
            problems.append(f"{path}.containerEdits: invalid device, empty device edits")
        else:
            problems.extend(edits_problems(edits, f"{path}.containerEdits"))
        if name in seen:
            problems.append(f'{path}.name: invalid spec, multiple device "{name}"')
        seen.setdefault(name, i)
    if not devices:
        problems.append("devices: invalid spec, no devices")
    return problems


def edits_problems(edits: dict[str, Any], path: str) -> list[str]:
    """Problems of one canonical ``containerEdits`` dict (the reference's ContainerEdits.Validate)."""
    problems: list[str] = []
    for i, e in enumerate(edits.get("env") or ()):
        err = env_problem(e)
        if err:
            problems.append(f"{path}.env[{i}]: {err}")
    for i, node in enumerate(edits.get("deviceNodes") or ()):
        npath = f"{path}.deviceNodes[{i}]"
        p = node.get("path", "")
        if not p:
            problems.append(f"{npath}.path: invalid (empty) device path")
        elif not p.startswith("/"):
            problems.append(f'{npath}.path: device path "{p}" is not absolute')
        hp = node.get("hostPath", "")
        if hp and not hp.startswith("/"):
            problems.append(f'{npath}.hostPath: host path "{hp}" is not absolute')
        t = node.get("type", "")
        if t not in _NODE_TYPES:
            problems.append(f'{npath}.type: device "{p}": invalid type "{t}"')
        perms = node.get("permissions", "")
        if perms and perms != "none" and not set(perms) <= _PERMS:
            problems.append(f'{npath}.permissions: device "{p}": invalid permissions "{perms}"')
    for i, hook in enumerate(edits.get("hooks") or ()):
        hpath = f"{path}.hooks[{i}]"
        hname = hook.get("hookName", "")
        if hname not in _HOOK_NAMES:
            problems.append(f'{hpath}.hookName: invalid hook name "{hname}"')
        hp = hook.get("path", "")
        if not hp:
            problems.append(f'{hpath}.path: invalid hook "{hname}" with empty path')
        elif not hp.startswith("/"):
            problems.append(f'{hpath}.path: invalid hook "{hname}": path "{hp}" is not absolute')
        for j, e in enumerate(hook.get("env") or ()):
            err = env_problem(e)
            if err:
                problems.append(f'{hpath}.env[{j}]: invalid hook "{hname}": {err}')
    for i, m in enumerate(edits.get("mounts") or ()):
        mpath = f"{path}.mounts[{i}]"
        if not m.get("hostPath"):
            problems.append(f"{mpath}.hostPath: invalid mount, empty host path")
        cp = m.get("containerPath", "")
        if not cp:
            problems.append(f"{mpath}.containerPath: invalid mount, empty container path")
        elif not cp.startswith("/"):
            problems.append(f'{mpath}.containerPath: container path "{cp}" is not absolute')
    rdt = edits.get("intelRdt")
    if rdt is not None:
        clos = rdt.get("closID", "")
        if clos != "/" and (len(clos) >= 4096 or clos in (".", "..") or "/" in clos or "\n" in clos):
            problems.append(f"{path}.intelRdt.closID: invalid ClosID")
    host_names: dict[str, str] = {}
    dev_names: dict[str, str] = {}
    for i, nd in enumerate(edits.get("netDevices") or ()):
        npath = f"{path}.netDevices[{i}]"
        h, n = nd.get("hostInterfaceName", ""), nd.get("name", "")
        if not h:
            problems.append(f"{npath}.hostInterfaceName: invalid linux net device, empty HostInterfaceName")
        if not n:
            problems.append(f"{npath}.name: invalid linux net device, empty Name")
        if h and h in host_names:
            problems.append(
                f"{npath}.hostInterfaceName: invalid linux net device, duplicate HostInterfaceName "
                f'"{h}" with names "{n}" and "{host_names[h]}"'
            )
        if n and n in dev_names:
            problems.append(
                f'{npath}.name: invalid linux net device, duplicate Name "{n}" with '
                f'HostInterfaceNames "{h}" and "{dev_names[n]}"'
            )
        if h:
            host_names.setdefault(h, n)
        if n:
            dev_names.setdefault(n, h)
    return problems


def annotation_key_problem(key: str) -> str | None:
    """Kubernetes qualified-name rules for an annotation key (checked lower-cased, as upstream)."""
    k = key.lower()
    parts = k.split("/")
    if len(parts) > 2:
        return "a qualified name must have at most one '/'"
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _is_dns_subdomain(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
    else:
        name = parts[0]
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _is_annotation_name(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return None


def annotations_problems(ann: dict[str, str] | None, path: str) -> list[str]:
    if not ann:
        return []
    problems = []
    total = 0
    for k, v in ann.items():
        err = annotation_key_problem(k)
        if err:
            problems.append(f'{path}: invalid key "{k}": {err}')
        total += len(k.encode()) + len(v.encode())
    if total > MAX_ANNOTATIONS_SIZE:
        problems.append(f"{path}: annotations size {total} is larger than {MAX_ANNOTATIONS_SIZE} bytes")
    return problems
