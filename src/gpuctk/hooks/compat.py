"""``enable-cuda-compat``: put the image's CUDA forward-compat libraries first when they
are newer than the host driver (upstream: NVIDIA/nvidia-container-toolkit
``cmd/nvidia-cdi-hook/cudacompat/``)."""

from __future__ import annotations

import os
import stat
import sys

from gpuctk.hooks.confine import Root

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

DEFAULT_COMPAT_ROOT = "/usr/local/cuda/compat"


def is_libcuda_name(name: str) -> bool:
    """``libcuda.so.X.Y[.Z]`` with ASCII digits (no ``re``: this runs on every container start)."""
    if not name.startswith("libcuda.so."):
        return False
    parts = name[len("libcuda.so.") :].split(".")
    return len(parts) in (2, 3) and all(p.isascii() and p.isdigit() for p in parts)


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    """ "550.54.15" -> (550, 54, 15); None when absent or not numeric."""
    if not v:
        return None
    parts = v.strip().split(".")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return None


def _cmp_key(t: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(list(t) + [0] * (3 - len(t))) if len(t) < 3 else t


def newer(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return _cmp_key(a) > _cmp_key(b)


def use_compat(
    note: dict[str, Any] | None,
    compat_version: str | None,
    host_driver_version: str | None,
    host_cuda_version: str | None,
) -> bool:
    """Upstream's decision rules (``cmd/nvidia-cdi-hook/cudacompat/cudacompat.go``), as a pure function.

    With the ELF note: if the compat or host driver version is unknown, use the compat
    libraries iff the note's ``CUDA Version`` is newer than the host CUDA version; else
    use them iff the host driver major is in the note's ``Driver`` list and the compat
    version is newer than the host driver version. Without the note: never when a host
    CUDA version was given; else iff the host driver major is older than the compat major.
    """
    compat = version_tuple(compat_version)
    host = version_tuple(host_driver_version)
    host_cuda = version_tuple(host_cuda_version)
    if note is not None:
        if compat is None or host is None:
            cont_cuda = version_tuple(str(note.get("CUDA Version", "")))
            if cont_cuda is None or host_cuda is None:
                return False
            return newer(cont_cuda, host_cuda)
        drivers = note.get("Driver")
        # the note is image content: anything but a list of ints / ASCII digit strings is ignored
        # ("²".isdigit() is True, yet int("²") raises)
        majors = {
            int(d)
            for d in (drivers if isinstance(drivers, list) else [])
            if (isinstance(d, int) and not isinstance(d, bool))
            or (isinstance(d, str) and d.isascii() and d.isdigit())
        }
        return host[0] in majors and newer(compat, host)
    if host_cuda is not None:
        return False
    if compat is None or host is None:
        return False
    return host[0] < compat[0]


def find_compat_lib(root: Root, compat_dir: str) -> str | None:
    """The single regular ``libcuda.so.X.Y[.Z]`` in the compat dir, or None (warned if several)."""
    try:
        names = root.listdir(compat_dir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = []
    for n in sorted(names):
        if is_libcuda_name(n):
            st = root.lstat(compat_dir.rstrip("/") + "/" + n)
            if st is not None and stat.S_ISREG(st.st_mode):
                found.append(n)
    if len(found) != 1:
        if found:
            print(
                f"gpuctk-hook: warning: {compat_dir}: expected one libcuda.so.*.*, found {', '.join(found)}",
                file=sys.stderr,
            )
        return None
    return found[0]


def enable_cuda_compat(
    root: Root,
    host_driver_version: str | None,
    host_cuda_version: str | None,
    compat_root: str = DEFAULT_COMPAT_ROOT,
) -> str | None:
    """Write ``/etc/ld.so.conf.d/00-compat-<rand>.conf`` naming the compat dir when it should be
    used; returns the path written (container path) or None. The cache is rebuilt by a later
    ``update-ldcache``."""
    if not host_driver_version and not host_cuda_version:
        return None
    compat_root = "/" + compat_root.strip("/")
    if not root.is_dir(compat_root):
        return None
    lib = find_compat_lib(root, compat_root)
    if lib is None:
        return None
    from gpuctk.hooks.elfnote import ElfError, cuda_compat_note  # (only with a compat dir: struct)

    try:
        note = cuda_compat_note(root.read_bytes(compat_root + "/" + lib))
    except ElfError as exc:
        print(
            f"gpuctk-hook: warning: {compat_root}/{lib}: {exc}; treated as having no compat note",
            file=sys.stderr,
        )
        note = None
    compat_version = lib[len("libcuda.so.") :]
    if not use_compat(note, compat_version, host_driver_version, host_cuda_version):
        return None
    conf = f"/etc/ld.so.conf.d/00-compat-{os.urandom(8).hex()}.conf"
    root.write_file(conf, compat_root + "\n", 0o644)
    return conf
