"""``cdi.k8s.io/`` annotations: building keys and values, parsing, merging with CRI devices."""

from __future__ import annotations

from gpuctk.cdi.errors import CDIError
from gpuctk.cdi.names import qualified_name_error

ANNOTATION_PREFIX = "cdi.k8s.io/"
MAX_NAME_LEN = 63
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_MID = _ALNUM | frozenset("_-.")


def annotation_key(plugin: str, device_id: str) -> str:
    """``cdi.k8s.io/<plugin>_<device_id>`` (``/`` in the id becomes ``_``), with the reference checks."""
    if not plugin:
        raise CDIError("invalid plugin name, empty")
    if not device_id:
        raise CDIError("invalid deviceID, empty")
    name = plugin + "_" + device_id.replace("/", "_")
    if len(name) > MAX_NAME_LEN:
        raise CDIError(f'invalid plugin+deviceID "{name}", too long')
    if name[0] not in _ALNUM:
        raise CDIError(f"invalid plugin+deviceID \"{name}\", first '{name[0]}' should be alphanumeric")
    for c in name[1:-1]:
        if c not in _MID:
            raise CDIError(f"invalid plugin+deviceID \"{name}\", invalid character '{c}'")
    if name[-1] not in _ALNUM:
        raise CDIError(f"invalid plugin+deviceID \"{name}\", last '{name[-1]}' should be alphanumeric")
    return ANNOTATION_PREFIX + name


def annotation_value(devices: list[str]) -> str:
    """The devices joined by ``,``; each must be a valid qualified name."""
    for d in devices:
        err = qualified_name_error(d)
        if err:
            raise CDIError(err)
    return ",".join(devices)


def update_annotations(
    annotations: dict[str, str] | None, plugin: str, device_id: str, devices: list[str]
) -> dict[str, str]:
    """A new annotations dict with the CDI request added; the input is never modified."""
    try:
        key = annotation_key(plugin, device_id)
    except CDIError as exc:
        raise CDIError(f"CDI annotation failed: {exc}") from None
    if annotations and key in annotations:
        raise CDIError(f'CDI annotation failed, key "{key}" used')
    value = annotation_value(devices)
    out = dict(annotations or {})
    out[key] = value
    return out


def parse_annotations(
    annotations: dict[str, str] | None, prefixes: tuple[str, ...] = (ANNOTATION_PREFIX,)
) -> tuple[list[str], list[str]]:
    """(keys, devices) of every annotation whose key starts with one of ``prefixes``.

    Values are split on ``,`` without trimming, like the reference; every piece must be a
    qualified name. Keys keep the dict's order; devices are not de-duplicated here.
    """
    keys: list[str] = []
    devices: list[str] = []
    for key, value in (annotations or {}).items():
        if not isinstance(key, str) or not key.startswith(prefixes):
            continue
        if not isinstance(value, str):
            raise CDIError(f'invalid CDI annotation "{key}": value is not a string')
        for d in value.split(","):
            if qualified_name_error(d):
                raise CDIError(f'invalid CDI device name "{d}"')
            devices.append(d)
        keys.append(key)
    return keys, devices


def merge_device_requests(
    cri_devices: list[str] | None,
    annotations: dict[str, str] | None,
    prefixes: tuple[str, ...] = (ANNOTATION_PREFIX,),
) -> list[str]:
    """Names from the CRI ``CDIDevices`` field first, then annotation requests, de-duplicated
    (the merge containerd and CRI-O do)."""
    seen: set[str] = set()
    out: list[str] = []
    for d in cri_devices or ():
        if d not in seen:
            seen.add(d)
            out.append(d)
    try:
        _, from_annotations = parse_annotations(annotations, prefixes)
    except CDIError as exc:
        raise CDIError(f"failed to parse CDI device annotations: {exc}") from None
    for d in from_annotations:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out
