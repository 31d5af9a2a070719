"""YAML reading and writing with go-yaml v2 scalar semantics. Imports PyYAML, so it is
only imported when a YAML spec is actually read or written (never on the JSON path).
"""

from __future__ import annotations

import yaml

from gpuctk.cdi.errors import CDIError
from gpuctk.cdi.scalars import NULL, plain_is_string, resolve_plain, to_go_string

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PLAIN = "!gpuctk-plain"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STD_SCALARS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
MAX_VALUES = 2_000_000  # alias expansion guard ("billion laughs")

_Parser: Any
try:
    import yaml.cyaml

    _Parser = yaml.cyaml.CParser  # type: ignore[attr-defined]  # libyaml: ~10x faster
except (ImportError, AttributeError):  # pragma: no cover - PyYAML built without libyaml
    _Parser = None


def _make_loader() -> Any:
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.resolver import BaseResolver
    from yaml.scanner import Scanner

    class _Resolver(BaseResolver):
        """Every plain scalar gets one tag; go-yaml v2 resolution happens in ``_convert``."""

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is yaml.ScalarNode and implicit[0]:
                return _PLAIN
            return super().resolve(kind, value, implicit)

    if _Parser is not None:

        class _CLoader(_Parser, _Resolver):
            def __init__(self, stream: Any) -> None:
                _Parser.__init__(self, stream)
                _Resolver.__init__(self)

        return _CLoader

    class _PyLoader(Reader, Scanner, Parser, Composer, _Resolver):
        def __init__(self, stream: Any) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _Resolver.__init__(self)

    return _PyLoader


_Loader = _make_loader()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).replace(' in "<unicode string>",', " at").split())


def _directive_problem(text: str) -> str | None:
    """go-yaml v2 accepts only ``%YAML 1.1`` ("found incompatible YAML document"); PyYAML and
    libyaml also take 1.2 (and PyYAML 1.x with a warning)."""
    if "%YAML" not in text:
        return None
    for line in text.splitlines():
        if line.startswith("---") or line.startswith("..."):
            break  # directives end at the document start
        if line.startswith("%YAML"):
            words = line.split()
            if len(words) < 2 or words[1] != "1.1":
                return f"found incompatible YAML document ({line.strip()[:40]}: only %YAML 1.1 is read by Go consumers)"
    return None


def load_yaml(text: str) -> object:
    """The first YAML document as plain Python data (None for an empty document)."""
    from gpuctk.cdi.model import go_raw_problem

    problem = _directive_problem(text) or go_raw_problem(text)
    if problem:
        raise CDIError(f"YAML: {problem}")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.composer.ComposerError as exc:
        if "expected a single document" in str(exc):
            raise CDIError("YAML: more than one document in the stream") from None
        raise CDIError(f"YAML: {_one_line(exc)}") from None
    except yaml.YAMLError as exc:
        raise CDIError(f"YAML: {_one_line(exc)}") from None
    finally:
        loader.dispose()
    if node is None:
        return None
    return _Converter(text).convert(node, "")


class _Converter:
    def __init__(self, text: str) -> None:
        self.count = 0
        self.active: set[int] = set()
        self.text = text

    def convert(self, node: Any, path: str) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            raise CDIError("YAML: document too large after alias expansion")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.active:
            raise CDIError(f"YAML: {path or '(document)'}: recursive alias")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    raise CDIError(f"YAML: {path or '(document)'}: unsupported tag {node.tag}")
                return [self.convert(n, f"{path}[{i}]") for i, n in enumerate(node.value)]
            if node.tag != _MAP:
                raise CDIError(f"YAML: {path or '(document)'}: unsupported tag {node.tag}")
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: Any, path: str) -> object:
        if node.style == '"' and "\\" in self.text:
            from gpuctk.cdi.model import go_escape_problem

            raw = self.text[node.start_mark.index : node.end_mark.index]
            problem = go_escape_problem(raw)
            if problem:
                raise CDIError(f"YAML: {path or '(document)'}: {problem} (line {node.start_mark.line + 1})")
        if node.tag == _STR:
            return node.value
        if node.tag == _PLAIN or node.tag in _STD_SCALARS:
            v = resolve_plain(node.value)
            return None if v is NULL else v
        raise CDIError(f"YAML: {path or '(document)'}: unsupported tag {node.tag}")

    def _key(self, node: Any, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise CDIError(
                f"YAML: {path or '(document)'}: mapping key is not a scalar (line {node.start_mark.line + 1})"
            )
        v = self._scalar(node, path)
        if v is None:
            return "null"
        return to_go_string(v) or ""

    def _mapping(self, node: Any, path: str) -> dict[str, object]:
        out: dict[str, object] = {}
        merged: list[Any] = []
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.tag == _PLAIN and knode.value == "<<":
                merged.append(vnode)
                continue
            key = self._key(knode, path)
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise CDIError(
                    f'YAML: {path or "(document)"}: duplicate key "{key}" (line {knode.start_mark.line + 1})'
                )
            out[key] = self.convert(vnode, sub)
        for m in merged:  # YAML merge keys: explicit keys win, earlier merges win
            sources = m.value if isinstance(m, yaml.SequenceNode) else [m]
            for src in sources:
                value = self.convert(src, path)
                if not isinstance(value, dict):
                    raise CDIError(f"YAML: {path or '(document)'}: merge value is not a mapping")
                for k, v in value.items():
                    out.setdefault(k, v)
        return out


class _Dumper(yaml.SafeDumper):
    """Quotes every string that go-yaml v2 would not read back as the same string."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            if value == "<<":
                return "tag:yaml.org,2002:merge"
            if plain_is_string(value):
                return _STR
            v = resolve_plain(value)
            if v is NULL:
                return "tag:yaml.org,2002:null"
            if isinstance(v, bool):
                return "tag:yaml.org,2002:bool"
            return "tag:yaml.org,2002:int" if isinstance(v, int) else "tag:yaml.org,2002:float"
        return super().resolve(kind, value, implicit)


_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: Any, value: str) -> Any:
    # YAML treats NEL and the Unicode line/paragraph separators as line breaks: only the
    # double-quoted style escapes them, every other style would fold them into spaces.
    style = '"' if any(c in value for c in _LINE_BREAKS) else None
    return dumper.represent_scalar(_STR, value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: dict[str, Any]) -> str:
    body = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )
    return "---\n" + body
