"""Nested-dict helpers shared by the engine editors and detection (paths are key tuples)."""

from __future__ import annotations

import copy
from typing import Any

from gpuctk.errors import GpuctkError


def get_in(d: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path``, or None when a key is missing or a step is not a table."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def ensure_in(d: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The table at ``path``, created (empty) where missing."""
    for key in path:
        nxt = d.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            d[key] = nxt
        d = nxt
    return d


def set_in(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    ensure_in(d, path[:-1])[path[-1]] = value


def delete_in(d: dict[str, Any], path: tuple[str, ...]) -> None:
    """Delete ``path`` and every parent that the deletion leaves empty."""
    parents = []
    cur: Any = d
    for key in path[:-1]:
        if not isinstance(cur, dict) or key not in cur:
            return
        parents.append((cur, key))
        cur = cur[key]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
        for parent, key in reversed(parents):
            if parent[key] == {}:
                del parent[key]
            else:
                break


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into ``base`` table by table (``over`` wins); returns ``base``."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def table(value: Any) -> dict[str, Any]:
    """``value`` if it is a table, else an empty one (for reading facts from odd configs)."""
    return value if isinstance(value, dict) else {}


def require_tables(d: dict[str, Any], path: tuple[str, ...], source: str) -> None:
    """Refuse a config where a step of ``path`` that gpuctk edits exists but is not a table
    (rather than silently replacing the user's value)."""
    for i in range(1, len(path) + 1):
        value = get_in(d, path[:i])
        if value is None:
            return
        if not isinstance(value, dict):
            raise GpuctkError(
                f"{source}: field {'.'.join(path[:i])}: must be a table, not {type(value).__name__}"
            )


def restore_empty_tables(wanted: dict[str, Any], before: dict[str, Any]) -> None:
    """Put back the tables of ``before`` that held no keys (in a file: a header followed only by
    comments, like ``[crio.runtime]`` in distro crio.conf files) where :func:`delete_in` removed
    them from ``wanted`` for being empty, so an uninstall gives the original back."""
    for key, value in before.items():
        if not isinstance(value, dict):
            continue
        if key not in wanted:
            if _only_tables(value):
                wanted[key] = copy.deepcopy(value)
        elif isinstance(wanted[key], dict):
            restore_empty_tables(wanted[key], value)


def _only_tables(value: dict[str, Any]) -> bool:
    return all(isinstance(v, dict) and _only_tables(v) for v in value.values())
