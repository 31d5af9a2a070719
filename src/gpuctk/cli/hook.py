"""`gpuctk hook <name> …`: the CDI hooks, identical to `gpuctk-hook <name> …`.

Everything after the hook name is handed to the hook runner untouched (the hooks keep
the upstream flag grammar, including ``--flag=value`` forms and unknown hook names).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "hook",
        help="run a CDI hook (same as gpuctk-hook)",
        add_help=False,
        description="Run one CDI hook; see `gpuctk hook --help`.",
    )
    # the runner's global flags, declared so argparse does not claim them (REMAINDER
    # does not capture a leading option)
    p.add_argument("-h", "--help", dest="hook_help", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-d", "--debug", dest="hook_debug", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", dest="hook_quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("hook_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from gpuctk.hooks.main import run

    front = [f for f, on in (("--debug", args.hook_debug), ("--quiet", args.hook_quiet)) if on]
    rest = list(args.hook_args)
    if args.hook_help and not rest:
        front.append("--help")
    elif args.hook_help:
        rest.append("--help")
    return run([*front, *rest], prog="gpuctk hook")
