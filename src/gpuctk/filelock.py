"""Node-file edits one at a time, and what killed ones leave behind: an exclusive ``flock`` on a
lock file beside the edited file (:class:`FileLock`), and removal of stale ``atomic_write``
temporaries and unheld lock files (:func:`remove_stale_temps`). See docs/reliability.md."""

from __future__ import annotations

import os
import stat

LOCK_SUFFIX = ".gpuctk-lock"
LOCK_TIMEOUT = 60.0


def lock_path(path: str) -> str:
    """The lock file of ``path``: ``.NAME.gpuctk-lock`` in the same directory (for a path whose
    directory does not exist yet, that of the nearest ancestor that does: taking a lock never
    creates a directory)."""
    path = os.path.abspath(path)
    directory, base = os.path.split(path)
    while directory != "/" and not os.path.isdir(directory):
        directory, base = os.path.split(directory)
    return os.path.join(directory, "." + base + LOCK_SUFFIX)


class FileLock:
    """An exclusive ``flock`` on the lock file beside each of ``paths`` (sorted, so two runs
    locking the same set never deadlock), held for a whole read-modify-write.

    A second run waits up to ``timeout`` seconds, then fails with one line naming the file
    and the pid that holds it. The lock file is removed on release; a waiter that got the
    lock on a removed file (its inode no longer at the path) retries on the new one. Re-entrant
    within one process (install locks a config that `runtime configure`'s apply locks again).
    """

    _held: dict[str, int] = {}  # lock path -> depth, this process

    def __init__(self, paths: list[str] | tuple[str, ...] | str, timeout: float | None = None) -> None:
        if isinstance(paths, str):
            paths = [paths]
        # a device or FIFO target (``--output /dev/stdout``) is written through: nothing to lock,
        # and no lock file belongs in /dev
        self.locks = sorted({lock_path(p) for p in paths if not _is_special(p)})
        self.timeout = LOCK_TIMEOUT if timeout is None else timeout
        self._fds: list[tuple[str, int]] = []

    def __enter__(self) -> FileLock:
        try:
            for lock in self.locks:
                if lock in FileLock._held:
                    FileLock._held[lock] += 1
                    self._fds.append((lock, -2))
                    continue
                self._fds.append((lock, self._acquire(lock)))
                FileLock._held[lock] = 1
        except BaseException:
            self.__exit__()
            raise
        return self

    def _acquire(self, lock: str) -> int:
        import fcntl
        import time

        from gpuctk.errors import GpuctkError

        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            directory = os.path.dirname(lock)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError:
                # a directory nobody can write in (read-only, /proc): the write that follows
                # fails there too, with its own one-line error; a lock would protect nothing
                return -1
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                if time.monotonic() >= deadline:
                    target = os.path.join(directory, os.path.basename(lock)[1 : -len(LOCK_SUFFIX)])
                    raise GpuctkError(
                        f"{target}: locked by another gpuctk run"
                        + (f" (pid {holder})" if holder else "")
                        + f" for {self.timeout:g} s ({lock}); try again when it has finished"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed it after we opened it: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd

    def __exit__(self, *exc: object) -> None:
        while self._fds:
            lock, fd = self._fds.pop()
            if fd == -1:
                FileLock._held.pop(lock, None)
                continue
            if fd < 0:
                FileLock._held[lock] -= 1
                continue
            FileLock._held.pop(lock, None)
            try:
                os.unlink(lock)  # while still holding it: see _acquire
            except OSError:
                pass
            os.close(fd)


def _is_special(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


def _read_pid(fd: int) -> str:
    try:
        data = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return data if data.isdigit() else ""


def is_temp_of(name: str, base: str) -> bool:
    """Whether directory entry ``name`` is an :func:`atomic_write` temporary file of ``base``
    or of a file gpuctk keeps beside it (``base.gpuctk-backup-*``, ``.base.gpuctk-journal``)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    stem, _, hexpart = name[1:-4].rpartition(".")
    if len(hexpart) != 12 or any(c not in "0123456789abcdef" for c in hexpart):
        return False
    return stem == base or stem.startswith(base + ".gpuctk-") or stem == "." + base + ".gpuctk-journal"


def remove_stale_temps(path: str) -> list[str]:
    """Remove temporary files a killed :func:`atomic_write` of ``path`` (or of its backups and
    journal) left in its directory; returns their paths. Call it holding ``path``'s lock: every
    writer of the file holds it, so no temporary file found then is still being written."""
    directory, base = os.path.split(os.path.abspath(path))
    removed: list[str] = []
    own = os.path.join(directory, "." + base + LOCK_SUFFIX)
    if _remove_unheld_lock(own):  # a killed run's (a lock this process holds stays)
        removed.append(own)
    # a lock a killed run took beside a directory that did not exist yet (see lock_path)
    child = directory
    for _ in range(16):
        parent, dirname = os.path.split(child)
        if not dirname:
            break
        if _remove_unheld_lock(os.path.join(parent, "." + dirname + LOCK_SUFFIX)):
            removed.append(os.path.join(parent, "." + dirname + LOCK_SUFFIX))
        child = parent
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if is_temp_of(name, base):
            full = os.path.join(directory, name)
            try:
                if stat.S_ISREG(os.lstat(full).st_mode):
                    os.unlink(full)
                    removed.append(full)
            except OSError:
                pass
    return removed


def _remove_unheld_lock(lock: str) -> bool:
    """Remove lock file ``lock`` if no process holds it (taking it first, as FileLock does)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock, follow_symlinks=False).st_ino:
            return False
        os.unlink(lock)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
