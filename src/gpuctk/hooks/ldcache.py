"""``update-ldcache``: make the injected library folders visible to the container's loader
and rebuild its ``/etc/ld.so.cache`` with the HOST's ldconfig (reference §5).

Split in two so that no container-controlled name is ever resolved by the host:

1. In the hook process, through :class:`~gpuctk.hooks.confine.Root`: write the
   ``00-nvcr-*`` / ``zz-nvcr-*`` conf files (or the musl path file on Alpine), and copy
   the host ldconfig into a sealed memfd (opened on the host, before anything else).
2. In a child in new mount/PID/IPC/UTS/net namespaces: bind the root fd onto a private
   staging dir, detach every procfs mount inside it (their ``/proc/<pid>/root`` magic links
   lead to the host), ``pivot_root`` into it and drop the old root, mount a fresh proc of the
   new PID namespace, then ``fexecve`` the sealed ldconfig with a scrubbed environment. From
   there on the kernel itself confines every lookup ldconfig makes.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys

from gpuctk.errors import GpuctkError
from gpuctk.hooks import sysc
from gpuctk.hooks.confine import Root, fd_path, private_dir

DEFAULT_LDCONFIG = "/sbin/ldconfig"
# the only environment a host binary run by a hook ever sees
SCRUBBED_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
DANGEROUS_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")
# what ldconfig needs to write a root-owned tree: CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER.
# Everything else (CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH's open_by_handle_at, ...) is dropped
# before the exec, so even a subverted ldconfig could not leave the pivoted root.
LDCONFIG_CAPS = {0, 1, 3}
# ldconfig opens whatever the image's conf tree names: a FIFO there blocks it forever. A real
# rebuild takes well under a second; past this the whole PID namespace is killed.
LDCONFIG_TIMEOUT_S = 60.0
LDCONFIG_TIMEOUT_ENV = "GPUCTK_LDCONFIG_TIMEOUT"  # the hook's (host-set) env, for tests


def host_env() -> dict[str, str]:
    """The environment for a host binary: fixed, never derived from the caller's."""
    return dict(SCRUBBED_ENV)


def triplet() -> str:
    m = os.uname().machine
    return {
        "x86_64": "x86_64-linux-gnu",
        "aarch64": "aarch64-linux-gnu",
        "ppc64le": "powerpc64le-linux-gnu",
        "s390x": "s390x-linux-gnu",
    }.get(m, f"{m}-linux-gnu")


def system_dirs(debian_like: bool) -> list[str]:
    """Directories the container's loader searches without any conf file."""
    if debian_like:
        t = triplet()
        return [f"/lib/{t}", f"/usr/lib/{t}", "/lib", "/usr/lib"]
    dirs = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
    if os.uname().machine == "x86_64":
        dirs += ["/libx32", "/usr/libx32"]
    return dirs


def normalise_ldconfig_path(path: str | None) -> str:
    """``@/sbin/ldconfig`` -> ``/sbin/ldconfig``; prefer ``ldconfig.real`` (Ubuntu's wrapper)."""
    p = (path or DEFAULT_LDCONFIG).lstrip("@") or DEFAULT_LDCONFIG
    if not os.path.isabs(p):
        raise GpuctkError(f"--ldconfig-path {path!r}: must be an absolute host path")
    if os.path.basename(p) == "ldconfig" and os.path.exists(p + ".real"):
        p += ".real"
    return p


def wildcard_match(pattern: str, name: str) -> bool:
    """Shell-style ``*`` / ``?`` matching (what ld.so.conf ``include`` lines use); ``fnmatch``
    would import ``re``, milliseconds on every container start."""
    p, n, star, mark = 0, 0, -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[n]) and pattern[p] != "*":
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _ours(name: str) -> bool:
    return (name.startswith("00-nvcr-") or name.startswith("zz-nvcr-")) and name.endswith(".conf")


# The conf tree is image content: bound what one hook run reads from it (real trees are a
# few dozen files of a few hundred bytes). Past the budget the rest is treated as absent,
# which only means a folder may be listed twice in our own conf file.
CONF_MAX_FILES = 256
CONF_FILE_LIMIT = 1 << 20
CONF_MAX_BYTES = 4 << 20


def _conf_dirs(
    root: Root, conf: str, seen: set[str], depth: int = 0, budget: list[int] | None = None
) -> list[str]:
    """Directories listed by an ld.so.conf, following ``include`` globs (read inside the root)."""
    if budget is None:
        budget = [CONF_MAX_FILES, CONF_MAX_BYTES]  # files, bytes left
    if depth > 8 or conf in seen or budget[0] <= 0 or budget[1] <= 0:
        return []
    seen.add(conf)
    budget[0] -= 1
    try:
        data = root.read_bytes(conf, min(CONF_FILE_LIMIT, budget[1]))
    except (OSError, GpuctkError):
        return []
    budget[1] -= len(data)
    text = data.decode(errors="replace")
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(conf), pattern)
                d, base = os.path.split(pattern)
                try:
                    names = sorted(root.listdir(d))
                except (OSError, GpuctkError):
                    continue
                for n in names:
                    if _ours(n):
                        continue  # replaced by this run, so they cover nothing
                    if wildcard_match(base, n):
                        out += _conf_dirs(root, f"{d}/{n}", seen, depth + 1, budget)
        elif line.startswith("hwcap"):
            continue
        else:
            out.append(os.path.normpath(line.split("=", 1)[0].strip()))
    return out


def plan_conf(root: Root, folders: list[str]) -> tuple[list[str], list[str], bool, bool]:
    """(folders still to add, system dirs, debian_like, alpine) for this container."""
    debian_like = root.exists("/etc/debian_version")
    alpine = root.exists("/etc/alpine-release")
    sysdirs = system_dirs(debian_like)
    covered = set(sysdirs) | set(_conf_dirs(root, "/etc/ld.so.conf", set()))
    add = []
    for f in dict.fromkeys(os.path.normpath("/" + f.strip("/")) for f in folders if f.strip()):
        if f not in covered:
            add.append(f)
    return add, sysdirs, debian_like, alpine


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


def sealed_copy(path: str) -> int:
    """A sealed, close-on-exec memfd holding the host binary at ``path``.

    It is opened on the host before any container path is touched; after sealing nobody
    (not even us) can change it, and exec'ing it needs no path inside the container. A
    dynamically linked binary is refused: its ELF interpreter would be looked up inside
    the container root, i.e. the image would choose the code that runs as root.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise GpuctkError(f"ldconfig {path}: {exc.strerror}") from None
    try:
        dynamic = _is_dynamic(data)
    except (GpuctkError, struct.error):
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


def _proc_mounts_below(prefix: str) -> list[str]:
    """Mount points of procfs mounts at or below ``prefix`` (deepest first), from our mountinfo."""
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index(b"-")
            except ValueError:
                continue
            mp = _unescape_mountinfo(fields[4])
            if fields[sep + 1] == b"proc" and (mp == prefix or mp.startswith(prefix + "/")):
                out.append(mp)
    return sorted(out, key=len, reverse=True)


def _child(root_path: str, root_fd: int, ldconfig_fd: int, staging: str, args: list[str]) -> None:
    """Runs as PID 1 of the new PID namespace, already in the private mount namespace."""
    last = sysc.last_cap()  # read while the host's /proc is still there
    # A bind source must be a mount of this namespace, and our root fd belongs to the old
    # one: reopen the (host-controlled) bundle root here and insist it is the same inode.
    fd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    a, b = os.fstat(fd), os.fstat(root_fd)
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        raise OSError(f"container root {root_path} changed while the hook ran")
    sysc.mount(fd_path(fd), staging, None, sysc.MS_BIND | sysc.MS_REC)
    os.close(fd)
    for mp in _proc_mounts_below(staging):
        sysc.umount2(mp, sysc.MNT_DETACH | sysc.UMOUNT_NOFOLLOW)
    os.chdir(staging)
    sysc.pivot_root(".", ".")
    sysc.umount2(".", sysc.MNT_DETACH)  # the old root (host) is gone from this namespace
    os.chdir("/")
    # from here every lookup is the kernel's, inside the container root
    try:
        st = os.lstat("/proc")
        import stat as _stat

        if _stat.S_ISDIR(st.st_mode):
            sysc.mount("proc", "/proc", "proc", sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC)
    except OSError:
        pass
    sysc.limit_capabilities(LDCONFIG_CAPS, last)
    os.execve(ldconfig_fd, args, host_env())


def ldconfig_timeout() -> float:
    try:
        value = float(os.environ.get(LDCONFIG_TIMEOUT_ENV, "") or LDCONFIG_TIMEOUT_S)
    except ValueError:
        return LDCONFIG_TIMEOUT_S
    return value if value > 0 else LDCONFIG_TIMEOUT_S


def _wait_or_kill(pid: int, timeout: float) -> int:  # pragma: no cover - runs in the forked child
    """Exit status of ``pid`` (PID 1 of the private namespace), SIGKILLed after ``timeout``
    seconds; killing it makes the kernel kill everything else in that namespace too."""
    import time

    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.write(
                2,
                f"gpuctk-hook: error: update-ldcache: ldconfig still running after {timeout:g}s "
                "(a FIFO or device in the image's ld.so.conf tree?); killed\n".encode(),
            )
            return 124
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def run_ldconfig(root: Root, ldconfig_path: str | None) -> int:
    """Rebuild the container's ld.so.cache with the host ldconfig; returns its exit status."""
    path = normalise_ldconfig_path(ldconfig_path)
    ldconfig_fd = sealed_copy(path)
    staging = private_dir("gpuctk-ldcache-")
    args = ["ldconfig", "-f", "/etc/ld.so.conf", "-C", "/etc/ld.so.cache"]
    timeout = ldconfig_timeout()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
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
                        _child(root.path, root.fd, ldconfig_fd, staging, args)
                    except BaseException as exc:
                        os.write(2, f"gpuctk-hook: error: update-ldcache: {exc}\n".encode())
                    os._exit(127)
                code = _wait_or_kill(inner, timeout)
            except BaseException as exc:
                os.write(2, f"gpuctk-hook: error: update-ldcache: {exc}\n".encode())
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        os.close(ldconfig_fd)
        try:
            os.rmdir(staging)
        except OSError:
            pass


def update_ldcache(root: Root, folders: list[str], ldconfig_path: str | None = None) -> list[str]:
    """The whole hook: conf files, then always rebuild the cache. Returns the files written."""
    if os.path.realpath(root.path) == "/":
        raise GpuctkError("the container root is the host's /; refusing")
    written = write_conf(root, folders)
    code = run_ldconfig(root, ldconfig_path)
    if code != 0:
        raise GpuctkError(f"ldconfig exited with status {code}")
    return written
