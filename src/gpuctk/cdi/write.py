"""Writing specs: canonical order, minimum version, validated first, atomic, mode 0644."""

from __future__ import annotations

import os

from gpuctk.cdi.errors import CDIError
from gpuctk.cdi.model import Spec, canonical_or_raise, deep_copy, format_for
from gpuctk.cdi.validate import validate_spec
from gpuctk.cdi.version import minimum_version_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def canonical_of(spec: Spec | dict[str, Any], source: str = "<memory>") -> dict[str, Any]:
    """A new canonical dict of a Spec or a (decodable, not necessarily valid) spec dict."""
    if isinstance(spec, Spec):
        return spec.to_dict()
    return deep_copy(canonical_or_raise(spec, source, validate=False))


def minimum_version(spec: Spec | dict[str, Any]) -> str:
    """The oldest CDI version that can express ``spec`` (e.g. ``"0.5.0"``)."""
    if isinstance(spec, Spec):
        return spec.minimum_version()
    return minimum_version_of(canonical_or_raise(spec, "<memory>", validate=False))


def prepare_for_write(spec: Spec | dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The dict that gets written: ``hostPath`` equal to ``path`` dropped, version set, validated."""
    d = canonical_of(spec)
    edits = [d.get("containerEdits") or {}] + [dev.get("containerEdits") or {} for dev in d["devices"]]
    for e in edits:
        for node in e.get("deviceNodes") or ():
            if node.get("hostPath") == node.get("path"):
                node.pop("hostPath", None)
    d["cdiVersion"] = version if version else minimum_version_of(d)
    problems = validate_spec(d)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CDIError(f"refusing to write an invalid CDI Spec: {problems[0]}{more}", problems=problems)
    return d


def render_spec(d: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        import json  # lazy: the runtime's create path imports this module but never writes

        from gpuctk.cdi.model import GO_YAML_RAW_REFUSED

        # raw UTF-8 (Go consumers parse JSON with go-yaml v2, which refuses surrogate-pair
        # escapes), except the characters its reader refuses raw: those as \u escapes
        text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
        if not text.isascii() or "\x7f" in text:
            bad = GO_YAML_RAW_REFUSED.intersection(text)
            for ch in bad:
                text = text.replace(ch, f"\\u{ord(ch):04x}")
            try:
                text.encode()
            except UnicodeEncodeError:
                raise CDIError(
                    "refusing to write an invalid CDI Spec: a string holds a lone UTF-16 surrogate"
                ) from None
        return text
    if fmt == "yaml":
        from gpuctk.cdi.yamlio import dump_yaml

        return dump_yaml(d)
    raise CDIError(f'unknown spec format "{fmt}" (want json or yaml)')


def write_spec(
    spec: Spec | dict[str, Any], path: str, *, format: str | None = None, version: str | None = None
) -> None:
    """Validate and atomically write a spec (mode 0644) as JSON or YAML.

    ``format`` defaults from the extension (``.json``, ``.yaml``/``.yml``); ``version``
    forces ``cdiVersion`` (it must still be at least the minimum), otherwise the spec's
    minimum version is written so that the oldest consumers can read it.
    """
    fmt = format or format_for(path)
    if fmt is None:
        raise CDIError(
            f'cannot tell the format of "{path}" from its extension; use .json, .yaml or give a format'
        )
    from gpuctk.fileio import atomic_write  # lazy: tempfile is not needed on the inject path

    text = render_spec(prepare_for_write(spec, version), fmt)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        atomic_write(path, text, mode=0o644)
    except OSError as exc:
        raise CDIError(f'failed to write CDI Spec "{path}": {exc.strerror or exc}') from None
