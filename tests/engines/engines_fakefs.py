"""An in-memory file system for the pure engine planners (golden and lifecycle tests)."""

from __future__ import annotations

from typing import Any

from gpuctk.engines.apply import BACKUP_INFIX, _parse_any
from gpuctk.engines.model import Plan


class FakeFS:
    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.files: dict[str, str] = dict(files or {})
        self._n = 0

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def prior(self, path: str, predicate: Any) -> dict[str, Any] | None:
        prefix = path + BACKUP_INFIX
        for name in sorted((p for p in self.files if p.startswith(prefix)), reverse=True):
            data = _parse_any(path, self.files[name])
            if data is not None and predicate(data):
                return data
        return None

    def apply(self, plan: Plan) -> None:
        for c in plan.changes:
            if not c.changed:
                continue
            if c.backup and c.old is not None:
                self._n += 1
                self.files[f"{c.path}{BACKUP_INFIX}{self._n:06d}"] = c.old
            if c.new is None:
                self.files.pop(c.path, None)
            else:
                self.files[c.path] = c.new

    def live(self) -> dict[str, str]:
        """Every file but the backups."""
        return {p: t for p, t in self.files.items() if BACKUP_INFIX not in p}
