"""`gpuctk`: the admin CLI. argparse front end only; the work lives in the core packages.

Each command group lives in its own module exposing ``register(subparsers)``. Only the
group named on the command line is imported, so ``gpuctk cdi inject`` does not pay for
the Kubernetes or engine code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from gpuctk import __version__
from gpuctk.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_USAGE, GpuctkError

# group name -> modules (in gpuctk.cli) whose register() adds subcommands to it.
# A module registering into a group receives that group's subparsers action.
GROUPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (help, kind, modules)   kind "group" = has sub-subcommands, "command" = leaf
    "cdi": ("CDI specs: validate, list, inject, generate, transform", "group", ("cdi", "generate")),
    "config": ("read and write the toolkit config.toml", "command", ("config_cmd",)),
    "runtime": ("configure container engines and detect native CDI", "group", ("runtime_cmd",)),
    "install": ("install gpuctk's launchers, config, engine config and CDI spec", "command", ("install",)),
    "system": ("device nodes and /dev/char links", "group", ("system",)),
    "hook": ("run a CDI hook (same as gpuctk-hook)", "command", ("hook",)),
    "sim": ("simulated GPU nodes for demos and tests", "group", ("sim",)),
    "oci": ("check OCI runtime specs (e.g. for gVisor)", "group", ("oci",)),
    "k8s": ("Kubernetes: plan, manifests, pod specs, checks", "group", ("k8s",)),
    "snapshot": (
        "collect node facts (GPUs, engine, CDI) locally or through an agent Job",
        "command",
        ("snapshot",),
    ),
    "doctor": ("check this node and print the fix for each problem", "command", ("doctor",)),
}


def _terminal_width() -> int:
    try:
        return int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
    except (ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    # argparse's default asks shutil for the width, importing shutil on every command
    # even when no help is printed; os.get_terminal_size gives the same answer.
    def __init__(self, prog: str, **kwargs: object) -> None:
        kwargs.setdefault("width", max(_terminal_width() - 2, 40))
        super().__init__(prog, **kwargs)  # type: ignore[arg-type]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _load(module: str):
    return importlib.import_module(f"gpuctk.cli.{module}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="gpuctk", description="NVIDIA GPUs in containers and on Kubernetes nodes.")
    parser.add_argument("--version", action="version", version=f"gpuctk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, kind, modules) in GROUPS.items():
        if only is not None and name != only:
            continue  # `gpuctk <group> …` builds only that group's parsers
        group_sub = None
        for module in modules:
            mod = _load(module)
            if kind == "group":
                if group_sub is None:
                    grp = sub.add_parser(name, help=help_text, description=help_text)
                    group_sub = grp.add_subparsers(
                        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser
                    )
                    grp.set_defaults(_group_parser=grp)
                mod.register(group_sub)
            else:
                mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    only = args_list[0] if args_list and args_list[0] in GROUPS else None
    parser = build_parser(only)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        group_parser = getattr(args, "_group_parser", None)
        (group_parser or parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except GpuctkError as exc:
        print(f"gpuctk: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_INVALID
    except Exception as exc:  # a bug: one line unless debugging
        if os.environ.get("GPUCTK_DEBUG"):
            raise
        print(
            f"gpuctk: internal error: {type(exc).__name__}: {exc} (set GPUCTK_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
