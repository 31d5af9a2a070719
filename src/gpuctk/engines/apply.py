"""The I/O shell of `gpuctk runtime configure`: read files, plan, back up, write atomically.

Everything is planned (and every input parsed) before the first write, so a malformed
config stops the command with the file untouched. A file whose new content equals the
old is not written at all (a repeated configure is a byte-identical no-op, no backup).
"""

from __future__ import annotations

import datetime
import difflib
import glob
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from typing import Any, TextIO

from gpuctk.engines import containerd, crio, docker
from gpuctk.engines.model import ConfigureOptions, FileChange, Plan
from gpuctk.errors import GpuctkError
from gpuctk.fileio import atomic_write

BACKUP_INFIX = ".gpuctk-backup-"


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            # /dev/null, a FIFO, /dev/zero: not a config file (and a backup "of" it would land in /dev)
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise GpuctkError(f"{path}: not a regular file, expected a config file")
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise GpuctkError(f"{path}: is a directory, expected a config file") from None
    except UnicodeDecodeError as exc:
        raise GpuctkError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot read: {exc.strerror}") from None


def backup_path(path: str, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    base = f"{path}{BACKUP_INFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
    candidate, n = base, 1
    while os.path.lexists(candidate):
        candidate, n = f"{base}.{n}", n + 1
    return candidate


def backups(path: str) -> list[str]:
    """Backups of ``path``, newest first (the timestamp sorts lexically)."""
    return sorted(glob.glob(glob.escape(path) + BACKUP_INFIX + "*"), reverse=True)


def _parse_any(path: str, text: str) -> dict[str, Any] | None:
    try:
        if path.endswith(".json"):
            data = json.loads(text) if text.strip() else {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def prior_state(path: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The newest backup of ``path`` satisfying ``predicate`` (e.g. "has no nvidia runtime"):
    the state before gpuctk changed it, used by --uninstall to put scalar settings back."""
    for b in backups(path):
        text = read_text(b)
        data = _parse_any(path, text or "")
        if data is not None and predicate(data):
            return data
    return None


def plan(opts: ConfigureOptions, uninstall: bool = False) -> Plan:
    module: Any = {"containerd": containerd, "crio": crio, "docker": docker}.get(opts.engine)
    if module is None:
        raise GpuctkError(f"unknown runtime {opts.engine!r} (containerd, crio or docker)", exit_code=2)
    if uninstall:
        result: Plan = module.plan_uninstall(opts, read_text, prior_state)
        for change in result.changes:
            _restore_backup_bytes(change)
        return result
    return module.plan_configure(opts, read_text)


def _restore_backup_bytes(change: FileChange) -> None:
    """An uninstall result holding the same data as a backup gets that backup's bytes back
    (the user's exact layout, blank lines included), not a re-rendering."""
    if not change.backup or change.new is None or change.new == change.old:
        return
    wanted = _parse_any(change.path, change.new)
    if wanted is None:
        return
    for b in backups(change.path):
        text = read_text(b)
        if text is not None and _parse_any(change.path, text) == wanted:
            change.new = text
            return


def unified_diff(change: FileChange) -> str:
    old = (change.old or "").splitlines(keepends=True)
    new = (change.new or "").splitlines(keepends=True)
    a = change.path if change.old is not None else "/dev/null"
    b = change.path if change.new is not None else "/dev/null"
    text = "".join(difflib.unified_diff(old, new, a, b))
    if text and not text.endswith("\n"):
        text += "\n"
    return text


def apply(p: Plan, *, dry_run: bool = False, out: TextIO | None = None) -> list[str]:
    """Write (or, with ``dry_run``, print the diff of) every changed file; returns messages."""
    out = out or sys.stdout
    messages: list[str] = []
    done: list[tuple[FileChange, str | None]] = []  # (change, its backup) written so far
    for change in p.changes:
        if not change.changed:
            messages.append(f"{change.path}: unchanged")
            continue
        if dry_run:
            out.write(unified_diff(change))
            continue
        backups: list[str] = []
        try:
            messages += _write(change, backups)
        except OSError as exc:
            # a drop-in without the import that loads it (or the reverse) is half a configuration
            undone = _undo([*done, (change, backups[0] if backups else None)])
            reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
            raise GpuctkError(
                f"{change.path}: cannot write: {reason}"
                + ("; the files already written were restored" if undone else "")
            ) from None
        done.append((change, backups[0] if backups else None))
    return messages


def _undo(done: list[tuple[FileChange, str | None]]) -> bool:
    """Put back the files of a failed apply (best effort); returns whether any was restored."""
    restored = False
    for change, backup in reversed(done):
        try:
            if change.old is None:
                if os.path.lexists(change.path) and change.new is not None:
                    os.unlink(change.path)
                    restored = True
            elif read_text(change.path) != change.old:
                atomic_write(change.path, change.old, change.mode)
                restored = True
            if backup:
                os.unlink(backup)
        except (OSError, GpuctkError):
            continue
    return restored


def _write(change: FileChange, backups: list[str] | None = None) -> list[str]:
    """Back up, then replace or delete one file; returns messages. ``backups`` collects the
    backup made, so a failed run can remove it again."""
    messages: list[str] = []
    if change.backup and change.old is not None:
        bpath = backup_path(change.path)
        shutil.copy2(change.path, bpath)
        if backups is not None:
            backups.append(bpath)
        messages.append(f"{change.path}: backed up to {bpath}")
    if change.new is None:
        try:
            os.unlink(change.path)
        except FileNotFoundError:
            pass
        messages.append(f"{change.path}: removed")
    else:
        os.makedirs(os.path.dirname(os.path.abspath(change.path)), mode=0o755, exist_ok=True)
        atomic_write(change.path, change.new, change.mode)
        messages.append(f"{change.path}: {'written' if change.old is None else 'updated'}")
    return messages
