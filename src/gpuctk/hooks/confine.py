"""Every file operation a hook does inside a container root goes through here.

The container image controls every name under its root, so no path below the root
may ever be handed to a path-based system call: a symlink (or a ``..``) swapped in at
the wrong moment would send a root-owned write to the host (CVE-2024-0132). Instead:

* the root is opened once (``O_PATH``) and everything is resolved relative to that fd;
* with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` (Linux >= 5.6) the kernel
  does the confinement: ``..`` and absolute symlinks stop at the root and
  ``/proc/<pid>/root``-style magic links are refused;
* without openat2, :class:`Root` walks one component at a time with ``O_NOFOLLOW``,
  reads each symlink itself and re-resolves its text inside the root (so even a magic
  link is only ever read as text, never followed);
* writes, renames, symlinks and mkdirs act on a resolved *parent* fd plus a single
  name, so the only thing the kernel looks up is one component in a directory we
  already hold; mounts target an ``O_PATH`` fd through ``/proc/self/fd/N``.

"Inside the root" is not yet "the container's own": a bind-mounted secret, a procfs entry
or a hard link to a host file are all inside the root. So:

* a mount point is crossed only where the hook's own (trusted) path names it: a path that
  needs a symlink is resolved again with ``RESOLVE_NO_XDEV`` (the walk checks mount ids), and
  a path taken from image *content* (an ``include`` line, a dangling link) always is;
* nothing is read from, written to or chmodded on procfs, sysfs and the other kernel
  filesystems (``fstatfs``), nor a mount root, nor a non-directory with ``st_nlink > 1``
  where a copy, write or chmod is about to happen;
* every lookup counts against a budget (a hostile tree of long ``a/../`` links cannot make
  one lookup take seconds).

Stdlib only (:mod:`gpuctk.hooks._libc` for the syscalls Python lacks).
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from gpuctk.errors import GpuctkError
from gpuctk.hooks._libc import libc, u32, u64

# openat2 is syscall 437 on every architecture using the generic table (x86_64, aarch64, ...)
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
APPEND_LIMIT = 1 << 20  # a search-path file is a few lines; bounds what append_lines reads
MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP after that)

# work budget of one Root: path components walked (fallback) / resolutions (openat2).
# Real hooks need a few hundred; the caps stop image-made lookups that take seconds each.
MAX_COMPONENTS_PER_LOOKUP = 4096
MAX_COMPONENTS = 200_000
MAX_LOOKUPS = 50_000

# filesystems whose objects are kernel state, not files of the container (statfs f_type)
PSEUDO_FS = {
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
    0x64626720: "debugfs",
    0x73636673: "securityfs",
    0x74726163: "tracefs",
    0xCAFE4A11: "bpf",
    0x62656570: "configfs",
    0xDE5E81E4: "efivarfs",
    0x6165676C: "pstore",
    0x1CD1: "devpts",
    0x42494E4D: "binfmt_misc",
    0xF97CFF8C: "selinuxfs",
    0x65735543: "fusectl",
    0x19800202: "mqueue",
    0x6E736673: "nsfs",
    0x43415D53: "smackfs",
}


class ConfineError(GpuctkError):
    """A path inside the container root could not be resolved safely."""


class NotOwnedError(ConfineError):
    """The object is inside the root but not the container's own (mount, kernel fs, hard link)."""


_openat2_ok: bool | None = None  # None = not probed yet


def fs_type(fd: int) -> int:
    """``statfs.f_type`` of the filesystem holding ``fd`` (0 when unknown)."""
    lib = libc()
    buf = lib.buffer(256)
    if lib.fstatfs(lib.c_int(fd), buf) != 0:
        return 0
    return u64(bytes(buf), 0) & 0xFFFFFFFF  # f_type: the first field, a long


_STATX_MNT_ID = 0x1000
_STATX_ATTR_MOUNT_ROOT = 0x2000
_AT_EMPTY_PATH = 0x1000
_statx_ok: bool | None = None


def _statx(fd: int) -> tuple[int, int, int, int] | None:
    """(mask, attributes, attributes_mask, mnt_id) of ``fd`` via statx, None without statx."""
    global _statx_ok
    if _statx_ok is False:
        return None
    lib = libc()
    buf = lib.buffer(256)
    try:
        fn = lib.statx
    except AttributeError:
        _statx_ok = False
        return None
    if fn(lib.c_int(fd), b"", lib.c_int(_AT_EMPTY_PATH), lib.c_uint(_STATX_MNT_ID), buf) != 0:
        if lib.get_errno() == errno.ENOSYS:
            _statx_ok = False
        return None
    _statx_ok = True
    raw = bytes(
        buf
    )  # struct statx: stx_mask u32 @0, stx_attributes u64 @8, ..._mask u64 @56, stx_mnt_id u64 @144
    mask = u32(raw, 0)
    mnt = u64(raw, 144) if mask & _STATX_MNT_ID else -1
    return mask, u64(raw, 8), u64(raw, 56), mnt


def mount_id(fd: int) -> int:
    """The id of the mount ``fd`` is on (statx, else ``/proc/self/fdinfo``); -1 when unknown."""
    sx = _statx(fd)
    if sx is not None and sx[3] >= 0:
        return sx[3]
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f.read(4096).splitlines():
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def is_mount_root(fd: int) -> bool | None:
    """Whether ``fd`` is the root of a mount (a bind-mounted file, a mount point); None when the
    kernel cannot say (statx without ``STATX_ATTR_MOUNT_ROOT``, before Linux 5.8)."""
    sx = _statx(fd)
    if sx is None or not sx[2] & _STATX_ATTR_MOUNT_ROOT:
        return None
    return bool(sx[1] & _STATX_ATTR_MOUNT_ROOT)


def _raw_openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    tmpfile = getattr(os, "O_TMPFILE", 0)
    wants_mode = flags & os.O_CREAT or (tmpfile and flags & tmpfile == tmpfile)
    lib = libc()
    # struct open_how {u64 flags, mode, resolve}; openat2 rejects a mode it would not use
    how = lib.buffer(24)
    how[:] = b"".join(
        v.to_bytes(8, sys.byteorder) for v in (flags & 0xFFFFFFFFFFFFFFFF, mode if wants_mode else 0, resolve)
    )
    name = _encode(path)
    for _ in range(16):  # EAGAIN: a concurrent rename raced a ".." lookup; the kernel asks us to retry
        fd = lib.syscall(SYS_OPENAT2, lib.c_int(dirfd), name, how, lib.c_ulong(24))
        if fd >= 0:
            return fd
        err = lib.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _encode(path: str) -> bytes:
    b = os.fsencode(path)
    if b"\0" in b:
        raise ConfineError(f"{path!r}: NUL byte in a path inside the container root")
    return b


def openat2_available() -> bool:
    """Whether this kernel has openat2 (probed once, then cached)."""
    global _openat2_ok
    if _openat2_ok is None:
        try:
            fd = _raw_openat2(-100, "/", os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            _openat2_ok = exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL)
        else:
            os.close(fd)
            _openat2_ok = True
    return _openat2_ok


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


class Root:
    """An open container root. Paths given to its methods are container paths
    (absolute or relative, both mean "from the container's /").

    ``fallback=True`` forces the component walk even where openat2 exists (tests do, to
    prove both paths; the hook's hidden ``--resolver=walk`` flag does the same). Nothing is
    read from the environment: it is the image's.

    ``strict=True`` on a lookup means the path is image content (an ``include`` line, a
    dangling link's text): it may never cross a mount point. Otherwise a mount point is
    crossed only on a path without symlinks, i.e. only where the hook's own path names it.
    """

    def __init__(self, path: str, *, fallback: bool | None = None) -> None:
        if fallback is None:
            fallback = not openat2_available()
        self.path = path
        self.fallback = fallback
        self.components = 0  # work done so far (budget)
        self.lookups = 0
        if "\0" in path:
            raise ConfineError(f"container root {path!r}: NUL byte in path")
        try:
            # the root itself comes from the bundle (host controlled), so a plain open is fine
            self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfineError(f"container root {path}: {exc.strerror}") from None
        st, host = os.fstat(self.fd), os.stat("/")
        if (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino):
            os.close(self.fd)
            self.fd = -1
            raise ConfineError(f"container root {path}: is the host's / (same device and inode); refusing")
        self.dev = st.st_dev
        self.mnt = mount_id(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ resolution
    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS or self.components > MAX_COMPONENTS:
            raise ConfineError(
                f"container root {self.path}: lookup budget exhausted "
                f"({MAX_LOOKUPS} lookups / {MAX_COMPONENTS} path components)"
            )

    def open(
        self,
        path: str,
        flags: int = os.O_PATH,
        mode: int = 0o644,
        *,
        follow: bool = True,
        strict: bool = False,
    ) -> int:
        """An fd for ``path`` resolved inside the root (``O_CLOEXEC`` always added).

        ``follow=False``: a final symlink is not followed (``O_PATH`` then gives the link itself).
        A mount point is crossed only on a path that needs no symlink (and never when
        ``strict``); ``OSError(EXDEV)`` otherwise.
        """
        self._count()
        if "\0" in path:
            raise ConfineError(f"{path!r}: NUL byte in a path inside the container root")
        flags |= os.O_CLOEXEC
        if not follow:
            flags |= os.O_NOFOLLOW
        if len(path) > 4096:
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path[:64] + "...")
        if not self.fallback:
            rel = path.lstrip("/") or "."
            base = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
            if not strict:
                try:
                    return _raw_openat2(self.fd, rel, flags, mode, base | RESOLVE_NO_SYMLINKS)
                except OSError as exc:
                    if exc.errno != errno.ELOOP:
                        raise
            try:
                return _raw_openat2(self.fd, rel, flags, mode, base | RESOLVE_NO_XDEV)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    raise _xdev(path) from None
                raise
        if not strict:
            try:
                return self._walk_open(path, flags, mode, follow, no_symlinks=True)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
        try:
            return self._walk_open(path, flags, mode, follow, no_xdev=True)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise _xdev(path) from None
            raise

    def _check_xdev(self, fd: int, path: str) -> None:
        if os.fstat(fd).st_dev != self.dev or mount_id(fd) != self.mnt:
            raise _xdev(path)

    def _walk_open(
        self,
        path: str,
        flags: int,
        mode: int,
        follow: bool,
        *,
        no_symlinks: bool = False,
        no_xdev: bool = False,
    ) -> int:
        """The openat2-less resolver: one component at a time, never letting the kernel follow a link.
        ``no_symlinks``: ELOOP at the first symlink; ``no_xdev``: EXDEV when a component is on
        another mount than the root."""
        todo = _components(path)
        todo.reverse()  # a stack: pop() gives the next component
        stack = [os.dup(self.fd)]  # fds of the directories walked so far; stack[0] is the root
        links = 0
        steps = 0
        try:
            while True:
                steps += 1
                self.components += 1
                if steps > MAX_COMPONENTS_PER_LOOKUP:
                    raise OSError(errno.ELOOP, "too many path components", path[:64])
                if self.components > MAX_COMPONENTS:
                    self._count()
                if not todo:
                    # the path named the root (or a directory we walked into) itself
                    return os.open(
                        ".",
                        flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW) | os.O_CLOEXEC,
                        dir_fd=stack[-1],
                    )
                name = todo.pop()
                if name == "..":
                    if len(stack) > 1:  # clamp at the root, like RESOLVE_IN_ROOT
                        os.close(stack.pop())
                    continue
                last = not todo
                if last:
                    # probe first: with O_DIRECTORY/O_CREAT the kernel reports a final link as
                    # ENOTDIR/EEXIST/ELOOP, so look at what the entry is before the real open
                    is_link = False
                    try:
                        probe = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                    except FileNotFoundError:
                        if not flags & os.O_CREAT:
                            raise
                    else:
                        try:
                            is_link = stat.S_ISLNK(os.fstat(probe).st_mode)
                            if no_xdev and not is_link:
                                self._check_xdev(probe, path)
                        finally:
                            os.close(probe)
                    if not (is_link and follow):
                        # O_NOFOLLOW: a link swapped in since the probe makes this fail, never escape
                        fd = os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
                        if no_xdev and not is_link:
                            try:
                                self._check_xdev(fd, path)
                            except BaseException:
                                os.close(fd)
                                raise
                        return fd
                    if no_symlinks:
                        raise OSError(errno.ELOOP, "symlink in path", path)
                    target = self._readlink_component(stack[-1], name)
                else:
                    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                    st = os.fstat(fd)
                    if stat.S_ISDIR(st.st_mode):
                        if no_xdev:
                            try:
                                self._check_xdev(fd, path)
                            except BaseException:
                                os.close(fd)
                                raise
                        stack.append(fd)
                        continue
                    os.close(fd)
                    if not stat.S_ISLNK(st.st_mode):
                        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                    if no_symlinks:
                        raise OSError(errno.ELOOP, "symlink in path", path)
                    target = self._readlink_component(stack[-1], name)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = _components(target)
                parts.reverse()
                todo.extend(parts)
        finally:
            for fd in stack:
                os.close(fd)

    @staticmethod
    def _readlink_component(dirfd: int, name: str) -> str:
        try:
            return os.readlink(name, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # swapped for a non-link since we looked: treat as gone
                raise OSError(errno.ENOENT, "entry changed during resolution", name) from None
            raise

    def _parent(self, path: str, *, create: bool = False, dir_mode: int = 0o755) -> tuple[int, str]:
        """(fd of the resolved parent directory, final name) for ``path``."""
        parts = _components(path)
        if not parts or parts[-1] == "..":
            raise ConfineError(f"{path!r}: not a file name inside the container root")
        parent = "/".join(parts[:-1])
        if create:
            return self.mkdirs(parent, dir_mode), parts[-1]
        return self.open(parent, os.O_PATH | os.O_DIRECTORY), parts[-1]

    # ------------------------------------------------------------------ queries
    def lstat(self, path: str, *, strict: bool = False) -> os.stat_result | None:
        """None when absent, or only reachable across a mount point (not the container's own)."""
        try:
            fd = self.open(path, os.O_PATH, follow=False, strict=strict)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            raise
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat(self, path: str, *, strict: bool = False) -> os.stat_result | None:
        try:
            fd = self.open(path, os.O_PATH, strict=strict)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            raise
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def is_file(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def readlink(self, path: str) -> str | None:
        """The text of ``path`` if it is a symlink (its parent resolved in the root), else None."""
        try:
            dfd, name = self._parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.readlink(name, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError) as exc:
            del exc
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise
        finally:
            os.close(dfd)

    def check_owned(
        self, fd: int, path: str, *, single_link: bool, mount_root_ok: bool = True
    ) -> os.stat_result:
        """Refuse an object that is not the container's own: one on procfs/sysfs/... (kernel
        state shared with the host), a non-directory with other hard links (``single_link``),
        or the root of a mount (a bind-mounted host file; unless ``mount_root_ok``)."""
        st = os.fstat(fd)
        kind = PSEUDO_FS.get(fs_type(fd))
        if kind is not None:
            raise NotOwnedError(f"{path}: on {kind} (kernel state, not a file of the container); refused")
        if single_link and not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            raise NotOwnedError(f"{path}: has {st.st_nlink} hard links (may be a host file); refused")
        if not mount_root_ok:
            root_of_mount = is_mount_root(fd)
            if root_of_mount is None:  # old kernel: only objects on the root's own mount
                root_of_mount = mount_id(fd) != self.mnt
            if root_of_mount:
                raise NotOwnedError(f"{path}: is a mount point (e.g. a bind-mounted host file); refused")
        return st

    def read_bytes(
        self, path: str, limit: int = 64 << 20, *, strict: bool = False, single_link: bool = False
    ) -> bytes:
        """At most ``limit`` bytes of a regular file of the container. Anything else (FIFO, device,
        socket, a file on procfs/sysfs) is refused before it is opened for reading, and the
        open is non-blocking."""
        # O_PATH first: opening a device node or FIFO for reading can have side effects
        pfd = self.open(path, os.O_PATH, strict=strict)
        try:
            if not stat.S_ISREG(os.fstat(pfd).st_mode):
                raise ConfineError(f"{path}: not a regular file inside the container root")
            self.check_owned(pfd, path, single_link=single_link)
            # exactly the inode checked
            fd = os.open(fd_path(pfd), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        finally:
            os.close(pfd)
        try:
            chunks = []
            total = 0
            while total < limit:
                b = os.read(fd, min(1 << 20, limit - total))
                if not b:
                    break
                chunks.append(b)
                total += len(b)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode(errors="replace")

    def listdir(self, path: str, *, strict: bool = False) -> list[str]:
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK, strict=strict)
        try:
            if PSEUDO_FS.get(fs_type(fd)):
                raise NotOwnedError(f"{path}: on {PSEUDO_FS[fs_type(fd)]}; not listed")
            return os.listdir(fd)
        finally:
            os.close(fd)

    def lstat_in(self, dirfd: int, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)

    # ------------------------------------------------------------------ changes
    def mkdirs(self, path: str, mode: int = 0o755, _depth: int = 0, *, strict: bool = False) -> int:
        """``mkdir -p`` inside the root; returns an ``O_PATH`` fd of the directory. A dangling
        symlink on the way is followed the way the kernel would, but inside the root."""
        if _depth > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        fd = os.dup(self.fd)
        walked: list[str] = []
        try:
            for name in _components(path):
                walked.append(name)
                sub = "/".join(walked)
                try:
                    nfd = self.open(sub, os.O_PATH | os.O_DIRECTORY, strict=strict)
                except FileNotFoundError:
                    # the name is missing (or a dangling link): create it in the dir we hold
                    try:
                        os.mkdir(name, mode, dir_fd=fd)
                        nfd = self.open(sub, os.O_PATH | os.O_DIRECTORY, strict=strict)
                    except FileExistsError:
                        try:
                            target = os.readlink(name, dir_fd=fd)
                        except OSError:  # not a link: a racing creator; resolve again
                            nfd = self.open(sub, os.O_PATH | os.O_DIRECTORY, strict=strict)
                        else:
                            # the link text is image content: it may not lead across a mount
                            parent = "/".join(walked[:-1])
                            nfd = self.mkdirs(
                                target if target.startswith("/") else f"{parent}/{target}",
                                mode,
                                _depth + 1,
                                strict=True,
                            )
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _tmp_name(self, name: str) -> str:
        return f".{name}.{os.urandom(6).hex()}.tmp"

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, *, dir_mode: int = 0o755) -> None:
        """Atomically replace ``path``: a temp file in the resolved parent, fsync, renameat.

        (``gpuctk.fileio.atomic_write`` does the same on host paths; here everything is
        relative to a directory fd we hold, so nothing below the root is looked up twice.)
        """
        if isinstance(data, str):
            data = data.encode()
        dfd, name = self._parent(path, create=True, dir_mode=dir_mode)
        try:
            tmp = self._tmp_name(name)
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
            )
            try:
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(data)
                    f.flush()
                    os.fchmod(fd, mode)
                    os.fsync(fd)
                os.close(fd)
                fd = -1
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                _unlink_quiet(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    def append_lines(self, path: str, lines: list[str], mode: int = 0o644) -> None:
        """Add the lines missing from a text file (atomically rewritten). An image file over
        ``APPEND_LIMIT`` is refused, never rewritten from a truncated read."""
        try:
            # copied into the rewritten file: never a host file's content (hard link, kernel fs)
            raw = self.read_bytes(path, APPEND_LIMIT + 1, single_link=True)
        except FileNotFoundError:
            raw = b""
        if len(raw) > APPEND_LIMIT:
            raise ConfineError(
                f"{path}: larger than {APPEND_LIMIT} bytes inside the container root; not edited"
            )
        old = raw.decode(errors="replace")
        have = set(old.splitlines())
        add = [ln for ln in lines if ln not in have]
        if not add:
            return
        sep = "" if not old or old.endswith("\n") else "\n"
        self.write_file(path, old + sep + "".join(ln + "\n" for ln in add), mode)

    def symlink(self, target: str, path: str, _parents: dict[str, int] | None = None) -> bool:
        """Make ``path`` a symlink to ``target`` (text written verbatim). An existing correct
        link is kept (returns False); anything else is replaced atomically (returns True)."""
        parts = _components(path)
        if not parts or parts[-1] == "..":
            raise ConfineError(f"{path!r}: not a file name inside the container root")
        parent, name = "/".join(parts[:-1]), parts[-1]
        if _parents is not None and parent in _parents:
            dfd = _parents[parent]
        else:
            dfd = self.mkdirs(parent)
            if _parents is not None:
                _parents[parent] = dfd
        try:
            try:
                os.symlink(target, name, dir_fd=dfd)  # the common case: nothing there yet
                return True
            except FileExistsError:
                pass
            try:
                if os.readlink(name, dir_fd=dfd) == target:
                    return False
            except OSError:
                pass
            tmp = self._tmp_name(name)
            os.symlink(target, tmp, dir_fd=dfd)
            try:
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except IsADirectoryError:
                _unlink_quiet(tmp, dfd)
                raise ConfineError(
                    f"{path}: is a directory in the container; not replaced by a link"
                ) from None
            except BaseException:
                _unlink_quiet(tmp, dfd)
                raise
            return True
        finally:
            if _parents is None:
                os.close(dfd)

    def symlinks(self, pairs: list[tuple[str, str]]) -> list[str]:
        """:meth:`symlink` for many (target, link) pairs, resolving each parent directory once."""
        parents: dict[str, int] = {}
        changed = []
        try:
            for target, link in pairs:
                if self.symlink(target, link, parents):
                    changed.append(link)
        finally:
            for fd in parents.values():
                os.close(fd)
        return changed

    def unlink(self, path: str) -> bool:
        dfd, name = self._parent(path)
        try:
            os.unlink(name, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dfd)

    def chmod(self, path: str, mode: int) -> bool:
        """chmod the resolved file through its fd; returns whether the mode changed. Objects that
        are not the container's own are refused (:class:`NotOwnedError`): procfs/sysfs entries
        (one mode per kernel object, for every mount), hard-linked files, mount roots (a
        bind-mounted host file or directory)."""
        fd = self.open(path, os.O_PATH)
        try:
            st = os.fstat(fd)
            if stat.S_IMODE(st.st_mode) == mode or stat.S_ISLNK(st.st_mode):
                return False
            self.check_owned(fd, path, single_link=True, mount_root_ok=False)
            # fchmod refuses O_PATH fds; the /proc/self/fd magic link names exactly this inode
            os.chmod(fd_path(fd), mode)
            return True
        finally:
            os.close(fd)

    def mount_target(self, path: str, *, want_dir: bool | None = None) -> int:
        """An ``O_PATH`` fd to mount over (through :func:`fd_path`), never a path string."""
        fd = self.open(path, os.O_PATH)
        st = os.fstat(fd)
        if want_dir is not None and stat.S_ISDIR(st.st_mode) != want_dir:
            os.close(fd)
            kind = "a directory" if want_dir else "a file"
            raise ConfineError(f"{path}: mount target is not {kind} inside the container root")
        return fd


def _xdev(path: str) -> OSError:
    return OSError(
        errno.EXDEV,
        "crosses a mount point through a symlink or image content (not the container's own)",
        path,
    )


def fd_path(fd: int) -> str:
    """The magic-link path that names exactly the object an fd holds."""
    return f"/proc/self/fd/{fd}"


def private_dir(prefix: str) -> str:
    """A fresh 0700 host directory for staging mounts (``tempfile`` costs milliseconds to import)."""
    base = "/tmp"  # not $TMPDIR: the environment may not be ours to trust
    for _ in range(100):
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no unique directory name under {base}")


def _unlink_quiet(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass
