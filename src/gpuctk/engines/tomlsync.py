"""TOML helpers for engine configs: precise parse errors and comment-keeping edits.

The editors compute the wanted configuration as plain dicts (easy to reason about and
test); :func:`sync` then changes a tomlkit document in place so it holds exactly that
data while every untouched line, comment and indentation stays as the user wrote it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from gpuctk.errors import GpuctkError


class ConfigSyntaxError(GpuctkError):
    """A config file that is not valid TOML/JSON (the file is left untouched)."""


def parse_plain(text: str, source: str) -> dict[str, Any]:
    """Parse TOML to plain dicts; errors name the file, line and column.

    The text's shape is capped first (:func:`gpuctk.fileio.check_toml_shape`: keys, header
    parts, nesting), so no parser spends seconds on a hostile file; CPython's integer digit
    limit (a ValueError, not a TOMLDecodeError) is one more syntax error."""
    from gpuctk.fileio import check_toml_shape

    try:
        check_toml_shape(text, source)
    except GpuctkError as exc:
        raise ConfigSyntaxError(str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)"
        raise ConfigSyntaxError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigSyntaxError(f"{source}: invalid TOML: nested too deeply") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise ConfigSyntaxError(f"{source}: invalid TOML: {exc}") from None


def parse_doc(text: str, source: str) -> Any:
    """Parse TOML with tomlkit (keeps layout). Validated by tomllib first for its messages."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    parse_plain(text, source)
    try:
        return tomlkit.parse(text)
    except ParseError as exc:  # tomllib accepted it but tomlkit did not: still name the place
        raise ConfigSyntaxError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigSyntaxError(f"{source}: invalid TOML: nested too deeply") from None


def dumps_plain(data: Mapping[str, Any]) -> str:
    """Render plain data as TOML (for files gpuctk owns entirely, like drop-ins)."""
    import tomlkit

    return tomlkit.dumps(_sorted_tables_last(data))


def _sorted_tables_last(data: Mapping[str, Any]) -> dict[str, Any]:
    # Scalars before tables so the rendering never needs a header for a scalar.
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: _sorted_tables_last(v) for k, v in data.items() if isinstance(v, Mapping)}
    return {**scalars, **tables}


# --------------------------------------------------------------------------- sync
def _is_table_item(item: Any) -> bool:
    from tomlkit.items import AoT, Table

    return isinstance(item, (Table, AoT))


def _key_indent(table: Any) -> str | None:
    """Indentation of the first plain key of a tomlkit table (None if it has none)."""
    for key, item in table.value.body:
        if key is not None and not _is_table_item(item) and hasattr(item, "trivia"):
            return str(item.trivia.indent)
    return None


def _table_indent(table: Any) -> str | None:
    for key, item in table.value.body:
        if key is not None and _is_table_item(item) and hasattr(item, "trivia"):
            return str(item.trivia.indent)
    return None


def _style(table: Any, header_indent: str, step: str) -> None:
    """Indent a freshly built tomlkit table like its neighbours."""
    from tomlkit.items import Table

    table.trivia.indent = header_indent
    for key, item in table.value.body:
        if key is None:
            continue
        if isinstance(item, Table):
            _style(item, header_indent + step, step)
        elif hasattr(item, "trivia"):
            item.trivia.indent = header_indent + step


def _is_super(table: Any) -> bool:
    try:
        return bool(table.is_super_table())
    except Exception:
        return False


def _new_table(value: Mapping[str, Any]) -> Any:
    import tomlkit

    table = tomlkit.table()
    for k, v in _sorted_tables_last(value).items():
        table.append(k, _new_table(v) if isinstance(v, Mapping) else v)
    return table


def sync(
    container: Any, wanted: Mapping[str, Any], *, header_indent: str = "", step: str | None = None
) -> None:
    """Make tomlkit ``container`` (document or table) hold exactly ``wanted``.

    Existing items whose value is unchanged are not touched (so their comments and
    formatting survive); changed scalars are replaced in place (an inline comment stays);
    new tables are indented like their siblings.
    """
    from tomlkit.container import OutOfOrderTableProxy
    from tomlkit.items import Table

    current = container.unwrap() if hasattr(container, "unwrap") else dict(container)
    for key in list(current):
        if key not in wanted:
            del container[key]
    # Infer this level's style from the file: indentation of keys/tables in it.
    if step is None:
        step = ""
    key_indent = _key_indent(container) if isinstance(container, Table) else ""
    sub_indent = _table_indent(container) if isinstance(container, Table) else ""
    for key, value in wanted.items():
        if key in current and current[key] == value:
            continue
        if isinstance(value, Mapping):
            item = container.get(key) if key in current else None
            if isinstance(item, Table):
                child_step = _child_step(item, step)
                sync(item, value, header_indent=str(item.trivia.indent), step=child_step)
                continue
            if isinstance(item, OutOfOrderTableProxy):  # a table split across the file
                sync(item, value, header_indent=header_indent + step, step=step)
                continue
            if key in current:
                del container[key]
            new = _new_table(value)
            indent = (
                sub_indent
                if sub_indent is not None
                else (
                    header_indent + step
                    if isinstance(container, Table) and not _is_super(container)
                    else header_indent
                )
            )
            if isinstance(container, OutOfOrderTableProxy):
                # a table split across the file: tomlkit adds the new table to its last part
                container[key] = new
                continue
            sibling_step = _sibling_step(container)
            if sibling_step is not None:
                step = sibling_step
            before = container.as_string()
            # the blank line that separated the container from what follows now sits before the new
            # table: keep it there, and give the new table a trailing blank line instead
            moved = before.endswith("\n\n")
            blank = "\n" if len(container) and not moved else ""
            if moved:
                _end_with_blank_line(new)
            container.append(key, new)
            # after append: tomlkit re-indents on append
            _style(container.item(key), indent, step)
            container.item(key).trivia.indent = blank + indent
            continue
        container[key] = value
        if key not in current and isinstance(container, Table):
            indent = key_indent if key_indent is not None else header_indent + step
            item = container.item(key)
            if hasattr(item, "trivia"):
                item.trivia.indent = indent


def _end_with_blank_line(table: Any) -> None:
    import tomlkit
    from tomlkit.items import Table

    last = None
    for key, item in table.value.body:
        if key is not None:
            last = item
    if isinstance(last, Table):
        _end_with_blank_line(last)
    else:
        table.add(tomlkit.nl())


def _sibling_step(container: Any) -> str | None:
    """The indentation step of an existing sibling table (its key indent minus its header's)."""
    from tomlkit.items import Table

    body = container.value.body if isinstance(container, Table) else getattr(container, "body", [])
    for key, item in body:
        if key is not None and isinstance(item, Table) and not _is_super(item):
            head = str(item.trivia.indent).rsplit("\n", 1)[-1]
            inner = _key_indent(item)
            if inner is not None and inner.startswith(head):
                return inner[len(head) :]
    return None


def _child_step(table: Any, default: str) -> str:
    """The indentation step a file uses below ``table`` (difference of header and key indent)."""
    head = str(table.trivia.indent)
    inner = _key_indent(table)
    if inner is None:
        inner = _table_indent(table)
    if inner is not None and inner.startswith(head):
        return inner[len(head) :]
    return default
