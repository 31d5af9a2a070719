"""The small hooks: create-symlinks, chmod, update-application-profile (upstream:
NVIDIA/nvidia-container-toolkit ``cmd/nvidia-cdi-hook/{create-symlinks,chmod,update-application-profile}/``).

Each takes an open :class:`~gpuctk.hooks.confine.Root`; nothing here builds a host path
below the container root.
"""

from __future__ import annotations

import os
import stat

from gpuctk.errors import GpuctkError
from gpuctk.hooks.confine import NotOwnedError, Root


def parse_links(specs: list[str]) -> list[tuple[str, str]]:
    """``TARGET::LINK`` strings (deduplicated, order kept) as (target, link) pairs."""
    out: list[tuple[str, str]] = []
    for spec in dict.fromkeys(specs):
        parts = spec.split("::")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise GpuctkError(f"--link {spec!r}: expected TARGET::LINK")
        out.append((parts[0], parts[1]))
    return out


def create_symlinks(root: Root, links: list[tuple[str, str]]) -> list[str]:
    """Create each link inside the root; an existing correct link is skipped, anything
    else replaced atomically. The target text is written verbatim (it is only ever
    interpreted by the container's own lookups). Returns the links created/replaced."""
    return root.symlinks(links)


def parse_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise GpuctkError(f"--mode {text!r}: expected an octal mode such as 755") from None
    if not 0 <= mode <= 0o7777:
        raise GpuctkError(f"--mode {text!r}: out of range")
    return mode


def chmod_paths(root: Root, mode: int, paths: list[str]) -> list[str]:
    """chmod each existing path (resolved in the root) whose mode differs; EPERM ignored.

    An object that is not the container's own (a procfs/sysfs entry, a hard-linked file, a
    bind-mounted host file, or anything reached through a symlink across a mount) is left
    alone with a one-line warning: the container did not ask for it to be changed, and
    changing it would change the host."""
    import errno
    import sys

    changed = []
    for p in paths:
        if not p:
            continue
        try:
            if root.chmod(p, mode):
                changed.append(p)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        except NotOwnedError as exc:
            print(f"gpuctk-hook: warning: chmod: {exc}", file=sys.stderr)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            print(
                f"gpuctk-hook: warning: chmod: {p}: reached through a symlink across a mount point; refused",
                file=sys.stderr,
            )
    return changed


APP_PROFILE_DIR = "/etc/nvidia/nvidia-application-profiles-rc.d"
APP_PROFILE_FILE = APP_PROFILE_DIR + "/10-container.conf"


def gpu_minors(root: Root) -> list[int]:
    """Minor numbers of the ``/dev/nvidia<N>`` character devices in the container."""
    try:
        names = root.listdir("/dev")
    except (FileNotFoundError, NotADirectoryError):
        return []
    minors = []
    for name in names:
        if not name.startswith("nvidia") or not name[6:].isdigit():
            continue
        st = root.lstat("/dev/" + name)
        if st is None or not stat.S_ISCHR(st.st_mode):
            continue
        minor = os.minor(st.st_rdev)
        if minor > 63:
            import sys

            print(
                f"gpuctk-hook: warning: /dev/{name}: minor {minor} does not fit the device mask; skipped",
                file=sys.stderr,
            )
            continue
        minors.append(minor)
    return sorted(minors)


def application_profile(minors: list[int]) -> str:
    """The one-line driver application profile limiting EGL to the container's GPUs (built by
    hand: importing json costs milliseconds on the hook path)."""
    mask = 0
    for m in minors:
        mask |= 1 << m
    return (
        '{"profiles":[{"name":"_container_","settings":["EGLVisibleDGPUDevices","'
        + hex(mask)
        + '"]}],"rules":[{"pattern":[],"profile":"_container_"}]}\n'
    )


def update_application_profile(root: Root) -> bool:
    minors = gpu_minors(root)
    if not minors:
        return False
    fd = root.mkdirs(APP_PROFILE_DIR, 0o555)
    os.close(fd)
    root.chmod(APP_PROFILE_DIR, 0o555)
    root.write_file(APP_PROFILE_FILE, application_profile(minors), 0o444)
    return True
