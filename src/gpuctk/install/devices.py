"""`gpuctk system create-device-nodes` / `create-dev-char-symlinks` (upstream: NVIDIA/nvidia-container-toolkit
``cmd/nvidia-ctk/system/create-device-nodes/create-device-nodes.go``, ``create-dev-char-symlinks/``).

Planning is pure (``/proc/devices`` text + a listing in, actions out); the executor does
mknod/chmod/symlink, or only prints the equivalent shell commands with ``dry_run``.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass

from gpuctk.errors import GpuctkError

KERNEL_MODULES = ("nvidia", "nvidia-uvm", "nvidia-modeset")
EXCLUDED_PREFIXES = ("nvidia-fs", "nvidia-nvswitch", "nvidia-nvlink")


def parse_proc_devices(text: str) -> dict[str, int]:
    """``Character devices:`` section of /proc/devices -> name -> major."""
    majors: dict[str, int] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.endswith(":"):
            section = line
            continue
        if section != "Character devices:" or not line:
            continue
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            majors.setdefault(parts[1], int(parts[0]))
    return majors


@dataclass
class Action:
    kind: str  # "mknod", "symlink", "modprobe"
    path: str
    major: int = 0
    minor: int = 0
    target: str = ""
    argv: tuple[str, ...] = ()

    def shell(self) -> str:
        if self.kind == "mknod":
            return f"mknod --mode=0666 {self.path} c {self.major} {self.minor}"
        if self.kind == "symlink":
            return f"ln -sfn {self.target} {self.path}"
        return " ".join(self.argv)


def control_node_actions(
    majors: dict[str, int], dev_dir: str, existing: set[str]
) -> tuple[list[Action], list[str]]:
    """mknod actions for the control nodes missing from ``dev_dir`` (+ warnings)."""
    actions, warnings = [], []
    nvidia = majors.get("nvidia", majors.get("nvidia-frontend"))
    wanted = []
    if nvidia is None:
        warnings.append("no `nvidia` (or `nvidia-frontend`) major in /proc/devices: is the driver loaded?")
    else:
        wanted += [("nvidiactl", nvidia, 255), ("nvidia-modeset", nvidia, 254)]
    uvm = majors.get("nvidia-uvm")
    if uvm is None:
        warnings.append("no `nvidia-uvm` major in /proc/devices: skipping nvidia-uvm nodes")
    else:
        wanted += [("nvidia-uvm", uvm, 0), ("nvidia-uvm-tools", uvm, 1)]
    for name, major, minor in wanted:
        if name not in existing:
            actions.append(Action("mknod", os.path.join(dev_dir, name), major, minor))
    return actions, warnings


def modprobe_actions(driver_root: str) -> list[Action]:
    prefix: tuple[str, ...] = ("chroot", driver_root) if driver_root not in ("", "/") else ()
    return [Action("modprobe", m, argv=(*prefix, "/sbin/modprobe", m)) for m in KERNEL_MODULES]


def list_char_devices(dev_dir: str) -> list[tuple[str, int, int]]:
    """NVIDIA char devices in dev_dir (and nvidia-caps/): (path, major, minor)."""
    found = []
    candidates = []
    for sub in ("", "nvidia-caps"):
        d = os.path.join(dev_dir, sub)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        candidates += [os.path.join(d, n) for n in names if n.startswith("nvidia")]
    for path in candidates:
        name = os.path.basename(path)
        if name.startswith(EXCLUDED_PREFIXES):
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISCHR(st.st_mode):
            found.append((path, os.major(st.st_rdev), os.minor(st.st_rdev)))
    return found


def char_symlink_actions(devices: list[tuple[str, int, int]], char_dir: str) -> list[Action]:
    actions = []
    for path, major, minor in devices:
        link = os.path.join(char_dir, f"{major}:{minor}")
        target = os.path.relpath(path, char_dir)  # like udev: ../nvidia0
        try:
            if os.readlink(link) == target:
                continue
        except OSError:
            pass
        actions.append(Action("symlink", link, major, minor, target=target))
    return actions


def execute(actions: list[Action], dry_run: bool) -> list[str]:
    """Run the actions (or only describe them); returns one shell-like line per action."""
    lines = []
    for a in actions:
        lines.append(a.shell())
        if dry_run:
            continue
        if a.kind == "modprobe":
            try:
                p = subprocess.run(list(a.argv), capture_output=True, text=True)
                failure = p.stderr.strip() if p.returncode != 0 else ""
            except OSError as exc:
                failure = f"{a.argv[0]}: {exc.strerror}"
            if failure:
                lines[-1] += f"  # failed: {failure[:200]}"
            continue
        try:
            _run_file_action(a)
        except PermissionError:
            raise GpuctkError(
                f"{a.path}: {a.kind} needs root (CAP_MKNOD)"
                if a.kind == "mknod"
                else f"{a.path}: permission denied"
            ) from None
        except OSError as exc:
            raise GpuctkError(f"{a.path}: cannot create: {exc.strerror or exc}") from None
    return lines


def _run_file_action(a: Action) -> None:
    os.makedirs(os.path.dirname(a.path), exist_ok=True)
    if a.kind == "mknod":
        try:
            os.mknod(a.path, 0o666 | stat.S_IFCHR, os.makedev(a.major, a.minor))
        except FileExistsError:
            return
        os.chmod(a.path, 0o666)
        return
    tmp = a.path + ".gpuctk-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(a.target, tmp)
    os.replace(tmp, a.path)
