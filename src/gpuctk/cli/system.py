"""`gpuctk system create-device-nodes|create-dev-char-symlinks` (upstream `nvidia-ctk system`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gpuctk.errors import GpuctkError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "create-device-nodes",
        help="create missing NVIDIA control device nodes",
        description="Create /dev/nvidiactl, nvidia-modeset, nvidia-uvm and nvidia-uvm-tools (mode 0666) from the "
        "majors in /proc/devices when they are missing, optionally loading the kernel modules first.",
    )
    p.add_argument(
        "--driver-root", "--root", dest="driver_root", default="/", help="driver root (for modprobe)"
    )
    p.add_argument("--dev-root", default="/", help="root holding dev/ (default /)")
    p.add_argument("--proc-devices", default="/proc/devices", help=argparse.SUPPRESS)
    p.add_argument("--control-devices", action="store_true", help="create the control nodes (the default)")
    p.add_argument(
        "--load-kernel-modules", action="store_true", help="modprobe nvidia, nvidia-uvm, nvidia-modeset"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be done")
    p.set_defaults(func=_create_device_nodes)

    s = subparsers.add_parser(
        "create-dev-char-symlinks",
        help="create /dev/char/<major>:<minor> links for NVIDIA devices",
        description="Create /dev/char/<major>:<minor> -> ../nvidiaN links for every NVIDIA char device, so "
        "systemd's cgroup device rules survive `systemctl daemon-reload`.",
    )
    s.add_argument("--dev-root", default="/", help="root holding dev/ (default /)")
    s.add_argument("--dev-char-path", help="default <dev-root>/dev/char")
    s.add_argument("--driver-root", default="/", help="driver root (for modprobe)")
    s.add_argument("--proc-devices", default="/proc/devices", help=argparse.SUPPRESS)
    s.add_argument("--create-device-nodes", action="store_true", help="create missing control nodes first")
    s.add_argument("--load-kernel-modules", action="store_true", help="modprobe the NVIDIA modules first")
    s.add_argument("--dry-run", action="store_true", help="print what would be done")
    s.set_defaults(func=_create_dev_char_symlinks)


def _check_roots(args: argparse.Namespace) -> None:
    """A mistyped root would otherwise look like a node without NVIDIA devices (exit 0, nothing done)."""
    from gpuctk.errors import UsageError

    if args.dry_run:
        return  # a dry run may plan for a root that does not exist yet
    roots = [("--dev-root", args.dev_root)] + (
        [("--driver-root", args.driver_root)] if args.load_kernel_modules else []
    )
    for flag, value in roots:
        if not os.path.isdir(value):
            raise UsageError(f"{flag} {value}: not a directory")


def _majors(path: str) -> dict[str, int]:
    from gpuctk.install.devices import parse_proc_devices

    try:
        with open(path) as f:
            return parse_proc_devices(f.read())
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot read: {exc.strerror}") from None


def _nodes(args: argparse.Namespace) -> list[str]:
    from gpuctk.install.devices import control_node_actions, execute, modprobe_actions

    lines: list[str] = []
    if args.load_kernel_modules:
        lines += execute(modprobe_actions(args.driver_root), args.dry_run)
    dev_dir = os.path.join(args.dev_root, "dev")
    existing = set(os.listdir(dev_dir)) if os.path.isdir(dev_dir) else set()
    actions, warnings = control_node_actions(_majors(args.proc_devices), dev_dir, existing)
    for w in warnings:
        print(f"gpuctk: warning: {w}", file=sys.stderr)
    lines += execute(actions, args.dry_run)
    return lines


def _create_device_nodes(args: argparse.Namespace) -> int:
    _check_roots(args)
    for line in _nodes(args):
        print(line)
    return 0


def _create_dev_char_symlinks(args: argparse.Namespace) -> int:
    from gpuctk.install.devices import char_symlink_actions, execute, list_char_devices

    _check_roots(args)
    lines: list[str] = []
    if args.create_device_nodes or args.load_kernel_modules:
        if not args.create_device_nodes:
            from gpuctk.install.devices import modprobe_actions

            lines += execute(modprobe_actions(args.driver_root), args.dry_run)
        else:
            lines += _nodes(args)
    dev_dir = os.path.join(args.dev_root, "dev")
    char_dir = args.dev_char_path or os.path.join(dev_dir, "char")
    lines += execute(char_symlink_actions(list_char_devices(dev_dir), char_dir), args.dry_run)
    for line in lines:
        print(line)
    return 0
