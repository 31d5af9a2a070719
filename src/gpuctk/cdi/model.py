"""The spec model: ``Spec`` and ``Device`` over canonical dicts, plus reading and parsing.

JSON goes through CPython's ``_json`` parser (``gpuctk._fastjson``, the same parser
``json.loads`` uses, without importing ``json``; duplicate keys rejected); YAML through
``gpuctk.cdi.yamlio``, imported only when a YAML document is actually parsed.
"""

from __future__ import annotations

from gpuctk import _fastjson as fastjson
from gpuctk.cdi.errors import CDIError

# decode/validate/version are imported where used: a Registry served from its cache
# (the runtime's create path) never decodes or validates a document.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_SPEC_SIZE = 4 << 20  # a generated spec for a large node is well under 1 MiB


def deep_copy(v: Any) -> Any:
    """Copy of JSON-like data (faster than copy.deepcopy)."""
    if isinstance(v, dict):
        return {k: deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deep_copy(x) for x in v]
    return v


class Device:
    """One device of a spec. ``container_edits`` is the canonical edits dict (read-only)."""

    __slots__ = ("_d", "spec")

    def __init__(self, data: dict[str, Any], spec: Spec) -> None:
        self._d = data
        self.spec = spec

    @property
    def name(self) -> str:
        return str(self._d["name"])

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self._d.get("annotations") or {})

    @property
    def container_edits(self) -> dict[str, Any]:
        return self._d["containerEdits"]

    @property
    def qualified_name(self) -> str:
        return self.spec.kind + "=" + self.name

    def to_dict(self) -> dict[str, Any]:
        return deep_copy(self._d)

    def __repr__(self) -> str:
        return f"<cdi.Device {self.qualified_name} from {self.spec.source}>"


class Spec:
    """A validated CDI spec. Build with ``Spec.from_dict``, ``parse_spec`` or ``load_spec``."""

    __slots__ = ("_d", "devices", "priority", "source")

    def __init__(self, canonical: dict[str, Any], source: str = "<memory>", priority: int = 0) -> None:
        """Wrap an already decoded and validated canonical dict (use ``from_dict`` otherwise)."""
        self._d = canonical
        self.source = source
        self.priority = priority
        self.devices = [Device(d, self) for d in canonical["devices"]]

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<memory>") -> Spec:
        """Decode and validate a spec document; CDIError names every problem."""
        return cls(canonical_or_raise(d, source, validate=True), source)

    @property
    def kind(self) -> str:
        return str(self._d["kind"])

    @property
    def version(self) -> str:
        return str(self._d["cdiVersion"])

    @property
    def vendor(self) -> str:
        return self.kind.partition("/")[0]

    @property
    def device_class(self) -> str:
        return self.kind.partition("/")[2]

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self._d.get("annotations") or {})

    @property
    def container_edits(self) -> dict[str, Any]:
        """The spec-wide edits (canonical, read-only; ``{}`` when there are none)."""
        return self._d.get("containerEdits") or {}

    def get_device(self, name: str) -> Device | None:
        for dev in self.devices:
            if dev.name == name:
                return dev
        return None

    def minimum_version(self) -> str:
        from gpuctk.cdi.version import minimum_version_of

        return minimum_version_of(self._d)

    def canonical(self) -> dict[str, Any]:
        """The canonical dict itself (not a copy: do not modify)."""
        return self._d

    def to_dict(self) -> dict[str, Any]:
        """The canonical on-disk shape (camelCase keys, struct order), as a new dict."""
        return deep_copy(self._d)

    def __repr__(self) -> str:
        return f"<cdi.Spec {self.kind} {self.version} from {self.source} ({len(self.devices)} devices)>"


def _problem_message(prefix: str, source: str, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f'{prefix} "{source}": {problems[0]}{more}'


def canonical_or_raise(doc: object, source: str, *, validate: bool) -> dict[str, Any]:
    from gpuctk.cdi.decode import decode_spec
    from gpuctk.cdi.validate import validate_spec

    problems: list[str] = []
    canonical = decode_spec(doc, problems)
    if problems or canonical is None:
        raise CDIError(_problem_message("failed to parse CDI Spec", source, problems), problems=problems)
    if validate:
        problems = validate_spec(canonical)
        if problems:
            raise CDIError(_problem_message("invalid CDI Spec", source, problems), problems=problems)
    return canonical


def validate_spec_dict(d: dict[str, Any], source: str = "<memory>") -> list[str]:
    """Every problem of a spec document as ``field: message`` (empty list = valid)."""
    from gpuctk.cdi.decode import decode_spec
    from gpuctk.cdi.validate import validate_spec

    problems: list[str] = []
    canonical = decode_spec(d, problems)
    if problems or canonical is None:
        return problems
    return validate_spec(canonical)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return d


def _bad_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON number {name}")


# Raw characters go-yaml v2's reader refuses ("control characters are not allowed",
# go-yaml ``readerc.go``); Go consumers parse JSON specs with it too (sigs.k8s.io/yaml), so a JSON spec holding one fails
# there although Python's json (and Go's encoding/json) would read it.
GO_YAML_RAW_REFUSED = frozenset([chr(0x7F), *map(chr, range(0x80, 0x85)), *map(chr, range(0x86, 0xA0))]) | {
    "\ufffe",
    "\uffff",
}


def go_escape_problem(text: str) -> str | None:
    """What go-yaml v2 (tags.cncf.io/container-device-interface parses every spec, JSON too,
    with it through sigs.k8s.io/yaml ``pkg/cdi/spec.go``) refuses in the backslash
    escapes of ``text``, a JSON document or the raw text of one YAML double-quoted scalar:
    ``\\/`` (a YAML 1.2 escape, unknown to YAML 1.1) and ``\\u`` escapes of UTF-16 surrogates
    (lone or paired: go-yaml checks each escape on its own). Stdlib only, no ``re``."""
    i = text.find("\\")
    while i >= 0:
        c = text[i + 1 : i + 2]
        if c == "/":
            return (
                "found unknown escape character '/' (\\/ is YAML 1.2; Go consumers parse specs as YAML 1.1)"
            )
        if c == "u":
            digits = text[i + 2 : i + 6]
            try:
                code = int(digits, 16)
            except ValueError:
                code = -1
            if 0xD800 <= code <= 0xDFFF:
                return f"found invalid Unicode character escape code \\u{digits} (a UTF-16 surrogate)"
        i = text.find("\\", i + 2)
    return None


def go_raw_problem(text: str) -> str | None:
    """A raw character go-yaml v2's reader refuses (DEL, C1 controls but NEL, U+FFFE/U+FFFF)."""
    if text.isascii() and "\x7f" not in text:
        return None
    bad = GO_YAML_RAW_REFUSED.intersection(text)
    if bad:
        return f"control characters are not allowed (U+{ord(min(bad)):04X})"
    return None


def format_for(source: str) -> str | None:
    """``"json"``/``"yaml"`` from a file name, None when the extension says nothing."""
    low = source.lower()
    if low.endswith(".json"):
        return "json"
    if low.endswith((".yaml", ".yml")):
        return "yaml"
    return None


def parse_document(data: bytes | str, source: str = "<memory>", fmt: str | None = None) -> object:
    """Parse JSON or YAML text into plain data (format from ``fmt``, the name, or sniffed)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CDIError(
                f'failed to parse CDI Spec "{source}": not valid UTF-8 (byte {exc.start})'
            ) from None
    else:
        text = data
    fmt = fmt or format_for(source)
    if fmt is None:
        fmt = "json" if text.lstrip()[:1] == "{" else "yaml"
    if fmt == "json":
        if not text.strip():
            return None
        try:
            doc = fastjson.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
        except _DuplicateKey as exc:
            raise CDIError(
                f'failed to parse CDI Spec "{source}": JSON: duplicate key "{exc.args[0]}"'
            ) from None
        except RecursionError:
            raise CDIError(f'failed to parse CDI Spec "{source}": JSON: nested too deeply') from None
        except ValueError as exc:
            raise CDIError(f'failed to parse CDI Spec "{source}": JSON: {exc}') from None
        # valid JSON that Go consumers still reject (they parse JSON with go-yaml v2)
        problem = go_raw_problem(text) or (go_escape_problem(text) if "\\" in text else None)
        if problem:
            raise CDIError(f'failed to parse CDI Spec "{source}": JSON: {problem}') from None
        return doc
    from gpuctk.cdi import yamlio  # lazy: PyYAML only for YAML input

    try:
        return yamlio.load_yaml(text)
    except CDIError as exc:
        raise CDIError(f'failed to parse CDI Spec "{source}": {exc}') from None
    except RecursionError:
        raise CDIError(f'failed to parse CDI Spec "{source}": YAML: nested too deeply') from None


def parse_spec(data: bytes | str, source: str = "<memory>") -> Spec:
    """Parse and validate a JSON or YAML spec."""
    doc = parse_document(data, source)
    return Spec(canonical_or_raise(doc, source, validate=True), source)


def read_spec_bytes(path: str) -> bytes:
    """The bytes of a spec file through ``gpuctk.fileio.read_regular``: regular files only
    (never blocks on a FIFO), at most MAX_SPEC_SIZE."""
    from gpuctk.fileio import FileTooLargeError, NotRegularFileError, read_regular

    try:
        return read_regular(path, MAX_SPEC_SIZE)
    except IsADirectoryError:
        raise CDIError(f'failed to read CDI Spec "{path}": is a directory') from None
    except NotRegularFileError:
        raise CDIError(f'failed to read CDI Spec "{path}": not a regular file') from None
    except FileTooLargeError as exc:
        size = "" if exc.size is None else f"file is {exc.size} bytes, "
        raise CDIError(
            f'failed to read CDI Spec "{path}": {size}more than the {MAX_SPEC_SIZE >> 20} MiB limit'
        ) from None
    except OSError as exc:
        raise CDIError(f'failed to read CDI Spec "{path}": {exc.strerror or exc}') from None


def load_spec(path: str, priority: int = 0) -> Spec:
    """Read, parse and validate one spec file (``.json`` is JSON, anything else YAML)."""
    data = read_spec_bytes(path)
    fmt = "json" if path.endswith(".json") else "yaml"
    doc = parse_document(data, path, fmt)
    return Spec(canonical_or_raise(doc, path, validate=True), path, priority)


def inspect_spec_file(path: str) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """For ``gpuctk cdi validate``: (canonical dict, file-level error, field problems)."""
    from gpuctk.cdi.decode import decode_spec
    from gpuctk.cdi.validate import validate_spec

    try:
        data = read_spec_bytes(path)
        doc = parse_document(data, path, "json" if path.endswith(".json") else "yaml")
    except CDIError as exc:
        return None, str(exc), []
    problems: list[str] = []
    canonical = decode_spec(doc, problems)
    if problems or canonical is None:
        return None, None, problems
    return canonical, None, validate_spec(canonical)
