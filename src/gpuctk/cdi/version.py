"""CDI spec versions: the minimum version a spec needs and the declared-version check."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CURRENT_VERSION = "1.1.0"
KNOWN_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0")
EARLIEST_VERSION = "0.3.0"
_ORDER = {v: i for i, v in enumerate(KNOWN_VERSIONS)}


def _all_edits(spec: dict[str, Any]) -> list[dict[str, Any]]:
    edits = [spec.get("containerEdits") or {}]
    edits.extend(d.get("containerEdits") or {} for d in spec.get("devices") or [])
    return edits


def _needs_1_1_0(spec: dict[str, Any]) -> bool:
    for e in _all_edits(spec):
        rdt = e.get("intelRdt")
        if rdt is not None and (rdt.get("schemata") is not None or rdt.get("enableMonitoring")):
            return True
        if e.get("netDevices"):
            return True
    return False


def _needs_0_7_0(spec: dict[str, Any]) -> bool:
    return any(e.get("intelRdt") is not None or e.get("additionalGids") for e in _all_edits(spec))


def _needs_0_6_0(spec: dict[str, Any]) -> bool:
    if spec.get("annotations"):
        return True
    if any(d.get("annotations") for d in spec.get("devices") or []):
        return True
    kind = spec.get("kind") or ""
    _, sep, cls = kind.partition("/")
    return bool(sep) and "." in cls


def _needs_0_5_0(spec: dict[str, Any]) -> bool:
    for d in spec.get("devices") or []:
        name = d.get("name") or ""
        if name and "0" <= name[0] <= "9":
            return True
    return any(n.get("hostPath") for e in _all_edits(spec) for n in e.get("deviceNodes") or [])


def _needs_0_4_0(spec: dict[str, Any]) -> bool:
    return any(m.get("type") for e in _all_edits(spec) for m in e.get("mounts") or [])


_RULES = (
    ("1.1.0", _needs_1_1_0),
    ("0.7.0", _needs_0_7_0),
    ("0.6.0", _needs_0_6_0),
    ("0.5.0", _needs_0_5_0),
    ("0.4.0", _needs_0_4_0),
)


def minimum_version_of(spec: dict[str, Any]) -> str:
    """Minimum version of a canonical spec dict (newest rule that applies; else 0.3.0)."""
    for version, needs in _RULES:
        if needs(spec):
            return version
    return EARLIEST_VERSION


def version_problem(declared: str, minimum: str) -> str | None:
    """The reference's ValidateVersion: one leading ``v`` allowed, exact known version."""
    bare = declared[1:] if declared.startswith("v") else declared
    if bare not in _ORDER:
        return f'invalid version "{declared}"'
    if _ORDER[bare] < _ORDER[minimum]:
        return f"the spec version must be at least v{minimum}"
    return None


def version_key(version: str) -> int:
    bare = version[1:] if version.startswith("v") else version
    return _ORDER.get(bare, -1)
