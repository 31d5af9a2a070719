"""The I/O shell of `gpuctk runtime configure`: read files, plan, back up, write atomically.

Everything is planned (and every input parsed) before the first write, so a malformed
config stops the command with the file untouched. A file whose new content equals the
old is not written at all (a repeated configure is a byte-identical no-op, no backup).

:func:`apply` holds an exclusive lock (:class:`gpuctk.filelock.FileLock`) on every file the
plan read or writes for the whole read-modify-write: it re-reads them under the lock and
plans again when another run changed one since :func:`plan`, so two runs at once never
lose an edit. An edit of several files (containerd config + drop-in) first writes a
journal beside the first of them; the next run on those files finishes an edit a crash
interrupted (see docs/reliability.md).
"""

from __future__ import annotations

import datetime
import difflib
import glob
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from gpuctk.engines import containerd, crio, docker
from gpuctk.engines.model import GENERATED_HEADER, ConfigureOptions, FileChange, Plan
from gpuctk.errors import GpuctkError
from gpuctk.fileio import (
    atomic_write,
    check_toml_shape,
    copy_atomic,
    decode_json,
    decode_utf8,
    read_regular,
)
from gpuctk.filelock import FileLock, remove_stale_temps

BACKUP_INFIX = ".gpuctk-backup-"
JOURNAL_SUFFIX = ".gpuctk-journal"
# Engine configs are kilobytes; a megabyte-sized one is a mistake (or an attack on the parsers).
MAX_ENGINE_CONFIG_BYTES = 4 << 20


def read_text(path: str) -> str | None:
    """The text of engine config ``path`` (None: it does not exist), checked before any parser
    sees it: a regular file (a FIFO or device is refused without blocking), at most
    MAX_ENGINE_CONFIG_BYTES, UTF-8 without NUL bytes, and for ``.json`` valid JSON without
    huge integers, deep nesting or lone surrogates, for TOML no pathological shape."""
    try:
        data = read_regular(path, MAX_ENGINE_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise GpuctkError(f"{path}: is a directory, expected a config file") from None
    except OSError as exc:
        if exc.strerror and exc.strerror.startswith("not a regular file"):
            raise GpuctkError(f"{path}: not a regular file, expected a config file") from None
        raise GpuctkError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GpuctkError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    decode_utf8(data, path, "config file")  # NUL bytes
    if path.endswith(".json"):
        try:
            decode_json(text, path)
        except GpuctkError as exc:
            if not getattr(exc, "syntax", False):  # a syntax error: the engine's parser names it
                raise
    elif BACKUP_INFIX not in path:
        check_toml_shape(text, path)
    return text


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
        try:
            text = read_text(b)
        except GpuctkError:  # an unreadable backup is no evidence either way
            continue
        data = _parse_any(path, text or "")
        if data is not None and predicate(data):
            return data
    return None


_ORIGIN = "_gpuctk_origin"  # attribute of a Plan: (the files it read and their text, how to plan it again)


def plan(opts: ConfigureOptions, uninstall: bool = False) -> Plan:
    return plan_all([opts], uninstall)


def plan_all(options: list[ConfigureOptions], uninstall: bool = False) -> Plan:
    """One plan for several configure (or uninstall) requests, each planned on what the ones
    before it would leave (install registers three runtimes): :func:`apply` then writes every
    file once, under one lock and one journal, instead of passing through two half states."""
    seen: dict[str, str | None] = {}  # what is on disk, as first read
    overlay: dict[str, str | None] = {}  # what the plans so far would leave
    merged: dict[str, FileChange] = {}
    result = Plan()

    def reader(path: str) -> str | None:
        if path in overlay:
            return overlay[path]
        text = read_text(path)
        seen.setdefault(path, text)
        return text

    for opts in options:
        module: Any = {"containerd": containerd, "crio": crio, "docker": docker}.get(opts.engine)
        if module is None:
            raise GpuctkError(f"unknown runtime {opts.engine!r} (containerd, crio or docker)", exit_code=2)
        if uninstall:
            one: Plan = module.plan_uninstall(opts, reader, prior_state)
            for change in one.changes:
                _restore_backup_bytes(change)
                _keep_foreign_drop_in(change, opts, one)
        else:
            one = module.plan_configure(opts, reader)
        result.warnings += [w for w in one.warnings if w not in result.warnings]
        for c in one.changes:
            overlay[c.path] = c.new
            if c.path in merged:
                m = merged[c.path]
                m.new, m.backup = c.new, m.backup or c.backup
                m.mode = c.mode if c.mode is not None else m.mode
                m.note = c.note or m.note
            else:
                merged[c.path] = FileChange(c.path, c.old, c.new, c.backup, c.mode, c.note)
                result.changes.append(merged[c.path])
    setattr(result, _ORIGIN, (seen, lambda: plan_all(options, uninstall)))
    return result


def _keep_foreign_drop_in(change: FileChange, opts: ConfigureOptions, p: Plan) -> None:
    """Uninstall never deletes a file at the drop-in path that gpuctk did not write (no
    generated header): it is someone else's, whatever it holds."""
    if (
        change.path == opts.drop_in
        and change.new is None
        and change.old is not None
        and not change.old.startswith(GENERATED_HEADER)
    ):
        change.new = change.old
        p.warnings.append(f"{change.path}: not written by gpuctk, left in place")


def _restore_backup_bytes(change: FileChange) -> None:
    """An uninstall result holding the same data as a backup gets that backup's bytes back
    (the user's exact layout, blank lines included), not a re-rendering."""
    if not change.backup or change.new is None or change.new == change.old:
        return
    wanted = _parse_any(change.path, change.new)
    if wanted is None:
        return
    for b in backups(change.path):
        try:
            text = read_text(b)
        except GpuctkError:
            continue
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


def write_order(changes: list[FileChange]) -> list[FileChange]:
    """New files first, deletions last (stable otherwise): a containerd drop-in exists before
    the ``imports`` line that loads it is written, and on uninstall that line is gone before
    the drop-in is removed, so the engine can start from every intermediate state."""

    def rank(c: FileChange) -> int:
        return 0 if c.old is None else 2 if c.new is None else 1

    return sorted(changes, key=rank)


def locked_paths(p: Plan) -> list[str]:
    """Every file :func:`apply` locks for ``p``: those it read and those it writes."""
    origin = getattr(p, _ORIGIN, None)
    read = list(origin[0]) if origin else []
    return sorted({*read, *(c.path for c in p.changes)})


def apply(p: Plan, *, dry_run: bool = False, out: TextIO | None = None) -> list[str]:
    """Write (or, with ``dry_run``, print the diff of) every changed file; returns messages."""
    out = out or sys.stdout
    if dry_run:
        for change in p.changes:
            if change.changed:
                out.write(unified_diff(change))
        return [f"{c.path}: unchanged" for c in p.changes if not c.changed]
    paths = locked_paths(p)
    with FileLock(paths):
        messages = recover(paths)
        _replan_if_changed(p)
        for path in locked_paths(p):
            remove_stale_temps(path)
        messages += _apply_locked(p)
    return messages


def _replan_if_changed(p: Plan) -> None:
    """Holding the lock: if a file changed since ``p`` was planned (another run edited it),
    plan again from what is there now, so that run's edit is kept."""
    origin = getattr(p, _ORIGIN, None)
    if not origin:
        return
    seen, replan = origin
    try:
        if all(read_text(path) == text for path, text in seen.items()):
            return
    except GpuctkError:  # unreadable now: the write below fails with that file's name
        return
    fresh = replan()
    if not set(locked_paths(fresh)) <= set(locked_paths(p)):  # the plan is made from options: never
        raise GpuctkError("the engine config changed while gpuctk ran; run the command again")
    p.changes[:] = fresh.changes
    setattr(p, _ORIGIN, getattr(fresh, _ORIGIN))


def _apply_locked(p: Plan) -> list[str]:
    messages: list[str] = []
    done: list[tuple[FileChange, str | None]] = []  # (change, its backup) written so far
    changed = [c for c in p.changes if c.changed]
    journal = _write_journal(changed) if len(changed) > 1 else None
    for change in write_order(p.changes):
        if not change.changed:
            messages.append(f"{change.path}: unchanged")
            continue
        backups: list[str] = []
        try:
            messages += _write(change, backups)
        except OSError as exc:
            # a drop-in without the import that loads it (or the reverse) is half a configuration
            undone = _undo([*done, (change, backups[0] if backups else None)])
            if journal:
                _remove(journal)
            reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
            raise GpuctkError(
                f"{change.path}: cannot write: {reason}"
                + ("; the files already written were restored" if undone else "")
            ) from None
        done.append((change, backups[0] if backups else None))
    if journal:
        _remove(journal)
    return messages


# --------------------------------------------------------------------------- journal
def journal_path(path: str) -> str:
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, "." + base + JOURNAL_SUFFIX)


def _write_journal(changes: list[FileChange]) -> str:
    """Before the first write of a multi-file edit: every file's old and new text, so the next
    run can finish the edit if this one is killed half-way."""
    existing = [c.path for c in changes if os.path.isdir(os.path.dirname(os.path.abspath(c.path)))]
    path = journal_path(min(existing or [c.path for c in changes]))
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    entries = [
        {"path": c.path, "old": c.old, "new": c.new, "mode": c.mode, "backup": c.backup} for c in changes
    ]
    atomic_write(path, json.dumps({"version": 1, "changes": entries}, ensure_ascii=False) + "\n", 0o600)
    return path


def recover(paths: list[str]) -> list[str]:
    """Holding the lock on ``paths``: finish an edit that a killed run left half-done (its
    journal beside one of them). A file that holds the edit's old text gets the new text; one
    that holds neither (changed by hand since) is left alone, with a message. Returns messages."""
    messages: list[str] = []
    for path in paths:
        jpath = journal_path(path)
        if not os.path.lexists(jpath):
            continue
        try:
            data = json.loads(read_regular(jpath, MAX_ENGINE_CONFIG_BYTES))
            entries = data["changes"]
            assert isinstance(entries, list)
        except (OSError, ValueError, KeyError, TypeError, AssertionError, RecursionError):
            _remove(jpath)
            messages.append(f"{jpath}: unreadable journal of an interrupted edit: removed")
            continue
        for e in entries:
            try:
                target, old, new = e["path"], e["old"], e["new"]
                current = read_text(target)
            except (KeyError, TypeError, GpuctkError):
                continue
            if current == new:
                continue
            if current != old:
                messages.append(f"{target}: changed since an interrupted edit; left as it is")
                continue
            change = FileChange(target, old, new, backup=bool(e.get("backup")), mode=e.get("mode"))
            try:
                _write(change)
            except OSError as exc:
                raise GpuctkError(
                    f"{target}: cannot finish an interrupted edit: {exc.strerror or exc}"
                ) from None
            messages.append(f"{target}: finished an edit an earlier run was interrupted in")
        _remove(jpath)
    return messages


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
    """Back up (atomically: a backup is complete or absent), then replace or delete one file;
    returns messages. ``backups`` collects the backup made, so a failed run can remove it again."""
    messages: list[str] = []
    if change.backup and change.old is not None and os.path.lexists(change.path):
        bpath = backup_path(change.path)
        copy_atomic(change.path, bpath)
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
