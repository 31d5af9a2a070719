"""``update-ldcache``: make the injected library folders visible to the container's loader
and rebuild its ``/etc/ld.so.cache`` with the HOST's ldconfig (upstream:
NVIDIA/nvidia-container-toolkit ``cmd/nvidia-cdi-hook/update-ldcache/update-ldcache.go``).

Split in two so that no container-controlled name is ever resolved by the host:

1. In the hook process, through :class:`~gpuctk.hooks.confine.Root`: write the
   ``00-nvcr-*`` / ``zz-nvcr-*`` conf files (or the musl path file on Alpine), and copy
   the host ldconfig into a sealed memfd (opened on the host, before anything else).
2. In a child in new mount/PID/IPC/UTS/net namespaces: bind the container root onto itself
   (no host staging directory, so a killed hook leaves nothing behind), detach every
   kernel-filesystem mount inside it (procfs: its ``/proc/<pid>/root`` magic links lead to the
   host; sysfs, cgroup, ...) and make every other sub-mount (volumes, bind-mounted host files)
   read-only, ``pivot_root`` into it and drop the old root, mount a read-only proc of the new
   PID namespace (``subset=pid`` where the kernel has it), set rlimits, drop capabilities, then
   ``fexecve`` the sealed ldconfig with a fixed environment. From there on the kernel itself
   confines every lookup ldconfig makes, and ldconfig can write only the root's own mount.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import sys

from gpuctk.errors import GpuctkError
from gpuctk.hooks import deadline, sysc
from gpuctk.hooks._libc import libc
from gpuctk.hooks.confine import PSEUDO_FS, Root
from gpuctk.hooks.hostio import read_host_file
from gpuctk.hooks.ldconf import _ours, plan_conf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_LDCONFIG = "/sbin/ldconfig"
# the only environment a host binary run by a hook ever sees
SCRUBBED_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
DANGEROUS_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")
# what ldconfig needs to write a root-owned tree: CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER.
# Everything else (CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH's open_by_handle_at, ...) is dropped
# before the exec, so even a subverted ldconfig could not leave the pivoted root.
LDCONFIG_CAPS = {0, 1, 3}
# ldconfig opens whatever the image's conf tree names: a FIFO there blocks it forever. It gets
# what is left of the hook's one deadline (gpuctk.hooks.deadline); then the whole PID namespace
# is killed. Its rlimits: what a cache rebuild of a large image needs, many times over.
LDCONFIG_RLIMITS = {
    "RLIMIT_AS": 1 << 30,
    "RLIMIT_FSIZE": 256 << 20,
    "RLIMIT_NOFILE": 1024,
    "RLIMIT_CORE": 0,
    "RLIMIT_MEMLOCK": 0,
    "RLIMIT_MSGQUEUE": 0,
}
# names ldconfig writes with O_TRUNC (not O_EXCL) under the root: removed before it runs, so an
# image's hard link there cannot turn ldconfig's write into a write of another (host) file
LDCONFIG_TEMP_NAMES = ("/etc/ld.so.cache~", "/var/cache/ldconfig/aux-cache~")


def host_env() -> dict[str, str]:
    """The environment for a host binary: fixed, never derived from the caller's."""
    return dict(SCRUBBED_ENV)


def normalise_ldconfig_path(path: str | None) -> str:
    """``@/sbin/ldconfig`` -> ``/sbin/ldconfig``; prefer ``ldconfig.real`` (Ubuntu's wrapper)."""
    p = (path or DEFAULT_LDCONFIG).lstrip("@") or DEFAULT_LDCONFIG
    if not os.path.isabs(p):
        raise GpuctkError(f"--ldconfig-path {path!r}: must be an absolute host path")
    if os.path.basename(p) == "ldconfig" and os.path.exists(p + ".real"):
        p += ".real"
    return p


def remove_ldconfig_temp_names(root: Root) -> None:
    """Remove whatever the image put at the names ldconfig opens with ``O_TRUNC``."""
    for p in LDCONFIG_TEMP_NAMES:
        st = root.lstat(p)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            raise GpuctkError(f"{p}: a directory in the container; ldconfig could not write its cache")
        root.unlink(p)


def write_conf(root: Root, folders: list[str]) -> list[str]:
    """Write the conf files for ``folders`` inside the root; returns the container paths written."""
    add, sysdirs, _debian, alpine = plan_conf(root, folders)
    written: list[str] = []
    if alpine:
        musl = f"/etc/ld-musl-{os.uname().machine}.path"
        root.append_lines(musl, [*add, *sysdirs] if not root.exists(musl) else add)
        written.append(musl)
    if not root.exists("/etc/ld.so.conf"):
        root.write_file("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n", 0o644)
        written.append("/etc/ld.so.conf")
    # conf files of an earlier run of this hook (container restart) would pile up
    try:
        for n in root.listdir("/etc/ld.so.conf.d"):
            if _ours(n):
                root.unlink("/etc/ld.so.conf.d/" + n)
    except (FileNotFoundError, NotADirectoryError):
        pass
    if add:
        p = f"/etc/ld.so.conf.d/00-nvcr-{os.urandom(8).hex()}.conf"
        root.write_file(p, "".join(d + "\n" for d in add), 0o644)
        written.append(p)
        p = f"/etc/ld.so.conf.d/zz-nvcr-{os.urandom(8).hex()}.conf"
        root.write_file(p, "".join(d + "\n" for d in sysdirs), 0o644)
        written.append(p)
    return written


# ---------------------------------------------------------------------- the host binary
def _is_dynamic(data: bytes) -> bool:
    """Whether an ELF file asks for a program interpreter (PT_INTERP)."""
    if data[:4] != b"\x7fELF":
        raise GpuctkError("not an ELF executable")
    e = "<" if data[5] == 1 else ">"
    if data[4] == 2:
        (phoff,) = struct.unpack_from(e + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(e + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 0x2A)
    for i in range(phnum):
        (ptype,) = struct.unpack_from(e + "I", data, phoff + i * phentsize)
        if ptype == 3:  # PT_INTERP
            return True
    return False


LDCONFIG_MAX_SIZE = 64 << 20


def sealed_copy(path: str) -> int:
    """A sealed, close-on-exec memfd holding the host binary at ``path``.

    It is opened on the host before any container path is touched; after sealing nobody
    (not even us) can change it, and exec'ing it needs no path inside the container. A
    dynamically linked binary is refused: its ELF interpreter would be looked up inside
    the container root, i.e. the image would choose the code that runs as root.
    """
    data = read_host_file(path, LDCONFIG_MAX_SIZE, "ldconfig")
    try:
        dynamic = _is_dynamic(data)
    except (GpuctkError, struct.error, IndexError):
        raise GpuctkError(f"ldconfig {path}: not an ELF executable") from None
    if dynamic:
        raise GpuctkError(
            f"ldconfig {path}: dynamically linked; refusing to run it inside a container root "
            "(its loader would come from the image). Point --ldconfig-path at a static ldconfig"
        )
    fd = os.memfd_create("ldconfig", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fchmod(fd, 0o555)
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unescape_mountinfo(field: bytes) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as ``\\ooo`` octal."""
    out = bytearray()
    i = 0
    while i < len(field):
        if field[i : i + 1] == b"\\" and field[i + 1 : i + 4].isdigit():
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return os.fsdecode(bytes(out))


# what ldconfig must not see at all inside its sandbox (kernel state shared with the host)
DETACH_FSTYPES = {*PSEUDO_FS.values(), "devtmpfs", "autofs", "hugetlbfs", "rpc_pipefs", "nfsd"}


def mounts_below(prefix: str) -> list[tuple[str, str]]:
    """(mount point relative to ``prefix``, fs type) of the mounts strictly below ``prefix``,
    deepest first, from our mountinfo."""
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index(b"-")
            except ValueError:
                continue
            mp = _unescape_mountinfo(fields[4])
            if mp.startswith(prefix.rstrip("/") + "/"):
                out.append((mp[len(prefix.rstrip("/")) :], os.fsdecode(fields[sep + 1])))
    return sorted(out, key=lambda m: len(m[0]), reverse=True)


def _confine_submounts(subs: list[tuple[str, str]]) -> None:  # pragma: no cover - forked child
    """After the pivot: detach kernel-fs mounts, make every other sub-mount read-only."""
    ro = sysc.MS_BIND | sysc.MS_REMOUNT | sysc.MS_RDONLY | sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC
    for mp, fstype in subs:
        if fstype not in DETACH_FSTYPES:
            try:
                sysc.mount(None, mp, None, ro)
                continue
            except OSError:
                pass  # (a mount we cannot make read-only is not kept at all)
        try:
            sysc.umount2(mp, sysc.MNT_DETACH | sysc.UMOUNT_NOFOLLOW)
        except OSError as exc:
            if exc.errno not in (22, 2):  # EINVAL / ENOENT: already gone with a parent
                raise


def _set_rlimits(resource: Any) -> None:  # pragma: no cover - forked child
    for name, value in LDCONFIG_RLIMITS.items():
        res = getattr(resource, name, None)
        if res is not None:
            try:
                resource.setrlimit(res, (value, value))
            except (OSError, ValueError):
                pass
    cpu = int(deadline.remaining()) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _child(root_path: str, root_fd: int, ldconfig_fd: int, args: list[str]) -> None:  # pragma: no cover
    """Runs as PID 1 of the new PID namespace, already in the private mount namespace."""
    last = sysc.last_cap()  # read while the host's /proc is still there
    import resource  # (no module can be imported once the host's / is gone)

    # A bind source must be a mount of this namespace, and our root fd belongs to the old
    # one: bind the (host-controlled) bundle root onto itself here, open the new mount and
    # insist it is the same inode. No staging directory on the host is needed.
    sysc.mount(root_path, root_path, None, sysc.MS_BIND | sysc.MS_REC)
    fd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    a, b = os.fstat(fd), os.fstat(root_fd)
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        raise OSError(f"container root {root_path} changed while the hook ran")
    subs = mounts_below(root_path)
    os.fchdir(fd)
    os.close(fd)
    sysc.pivot_root(".", ".")
    sysc.umount2(".", sysc.MNT_DETACH)  # the old root (host) is gone from this namespace
    os.chdir("/")
    # from here every lookup is the kernel's, inside the container root
    _confine_submounts(subs)
    try:
        st = os.lstat("/proc")
        if stat.S_ISDIR(st.st_mode):
            flags = sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC | sysc.MS_RDONLY
            try:
                sysc.mount("proc", "/proc", "proc", flags, "subset=pid,hidepid=invisible")
            except OSError:  # before Linux 5.8: a read-only proc (so /proc/sys is not writable)
                sysc.mount("proc", "/proc", "proc", flags)
    except OSError:
        pass
    _set_rlimits(resource)
    sysc.limit_capabilities(LDCONFIG_CAPS, last)
    os.execve(ldconfig_fd, args, host_env())


def _wait_or_kill(pid: int, timeout: float) -> int:  # pragma: no cover - runs in the forked child
    """Exit status of ``pid`` (PID 1 of the private namespace), SIGKILLed after ``timeout``
    seconds; killing it makes the kernel kill everything else in that namespace too."""
    import time

    end = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        if time.monotonic() >= end:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.write(
                2,
                f"gpuctk-hook: error: update-ldcache: ldconfig still running at the hook's deadline "
                f"({timeout:.3g}s left for it; a FIFO or device in the image's ld.so.conf tree?); killed\n".encode(),
            )
            return 124
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def run_ldconfig(root: Root, ldconfig_path: str | None) -> int:
    """Rebuild the container's ld.so.cache with the host ldconfig; returns its exit status."""
    path = normalise_ldconfig_path(ldconfig_path)
    ldconfig_fd = sealed_copy(path)
    args = ["ldconfig", "-f", "/etc/ld.so.conf", "-C", "/etc/ld.so.cache"]
    timeout = deadline.remaining()
    # the child's syscalls (prctl, mount, pivot_root) come from gpuctk.hooks._libc: load its C
    # half here, where the host's / still holds the _ctypes extension
    libc()
    pid = -1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                deadline.disarm()
                sysc.unshare(
                    sysc.CLONE_NEWNS
                    | sysc.CLONE_NEWUTS
                    | sysc.CLONE_NEWIPC
                    | sysc.CLONE_NEWNET
                    | sysc.CLONE_NEWPID
                )
                sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)
                sysc.die_with_parent()
                if os.getppid() == 1:
                    os._exit(1)  # the hook died before the line above took effect
                inner = os.fork()
                if inner == 0:
                    try:
                        sysc.die_with_parent()
                        _child(root.path, root.fd, ldconfig_fd, args)
                    except BaseException as exc:
                        os.write(2, f"gpuctk-hook: error: update-ldcache: {exc}\n".encode())
                    os._exit(127)
                code = _wait_or_kill(inner, timeout)
            except BaseException as exc:
                os.write(2, f"gpuctk-hook: error: update-ldcache: {exc}\n".encode())
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        pid = -1
        return os.waitstatus_to_exitcode(status)
    finally:
        if pid > 0:  # interrupted (the deadline): its namespace dies with it
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
        os.close(ldconfig_fd)


def update_ldcache(root: Root, folders: list[str], ldconfig_path: str | None = None) -> list[str]:
    """The whole hook: conf files, then always rebuild the cache. Returns the files written.
    (:class:`Root` refuses a root that is the host's ``/`` by device and inode.)"""
    written = write_conf(root, folders)
    remove_ldconfig_temp_names(root)
    code = run_ldconfig(root, ldconfig_path)
    if code != 0:
        raise GpuctkError(f"ldconfig exited with status {code}")
    return written
