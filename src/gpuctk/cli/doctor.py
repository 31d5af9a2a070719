"""`gpuctk doctor`: check this node and print the fix for each problem."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_doctor(args: argparse.Namespace) -> int:
    from gpuctk.snapshot.doctor import check_shape, exit_code, render, run_checks

    if args.from_file:
        from gpuctk.cli.snapshot import load_document

        snap = load_document(args.from_file)
        check_shape(snap, args.from_file)
    else:
        from gpuctk.cli.snapshot import collect_options
        from gpuctk.snapshot.collect import collect_snapshot

        snap = collect_snapshot(collect_options(args, kubernetes=False))
    checks = run_checks(snap)
    if args.output == "json":
        sys.stdout.write(json.dumps([c.to_dict() for c in checks], indent=2) + "\n")
    else:
        sys.stdout.write(render(checks))
    return exit_code(checks)


def register(sub: argparse._SubParsersAction) -> None:
    from gpuctk.cli.snapshot import add_collect_args

    p = sub.add_parser(
        "doctor",
        help="check this node and print the fix for each problem",
        description="Runs the snapshot's checks (driver, persistence mode, CDI specs valid and not "
        "stale, CDI enabled in the engine, GPU runtime configured, /dev/char links) and "
        "prints pass/warn/fail lines. Exit 1 when something fails.",
    )
    add_collect_args(p)
    p.add_argument(
        "--from", dest="from_file", metavar="FILE", help="check a saved snapshot instead of this node"
    )
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_doctor)
