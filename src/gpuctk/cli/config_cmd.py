"""`gpuctk config`: read, change and write the toolkit's config.toml (like `nvidia-ctk config`)."""

from __future__ import annotations

import argparse
import sys

DEFAULT_ACTIONS = ("default", "create-default", "generate-default")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "config",
        help="read and write the toolkit config.toml",
        description=(
            "Print the toolkit config (config.toml) in upstream's layout, optionally changed with --set, "
            "or write it back with --in-place / --output. `gpuctk config default` prints the defaults. "
            "Without --config-file the file is looked up at $NVIDIA_CTK_CONFIG_FILE_PATH, then "
            "${XDG_CONFIG_HOME:-/etc}/nvidia-container-runtime/config.toml; a missing file means defaults."
        ),
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=DEFAULT_ACTIONS,
        metavar="default",
        help="print (or --output) the default config instead of the current one",
    )
    p.add_argument(
        "-c", "--config-file", metavar="FILE", help="the config file to read (and write with --in-place)"
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="set a dotted key (e.g. nvidia-container-runtime.mode=cdi); a bool key alone means true; "
        "lists are split on the list separator; a feature flag set to 'nil' is removed",
    )
    p.add_argument(
        "--set-list-separator", default=",", metavar="SEP", help="separator for list values (default ',')"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("-i", "--in-place", action="store_true", help="write the result back to the config file")
    out.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print the effective config (every key) as JSON")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on keys gpuctk does not know; without it each is a warning, and the "
        "runtime and hooks ignore them, as upstream does",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.in_place and not args.action:  # the whole read-modify-write under the file's lock
        from gpuctk.config import config_path
        from gpuctk.filelock import FileLock, remove_stale_temps

        path = args.config_file or config_path()
        with FileLock(path):
            remove_stale_temps(path)
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from gpuctk.config import (
        ConfigError,
        config_path,
        default_config,
        parse_value,
        read_config,
        render,
        set_value,
    )
    from gpuctk.errors import UsageError
    from gpuctk.fileio import atomic_write

    path = args.config_file or config_path()
    if args.json and args.in_place:
        raise UsageError("--json prints the effective config; it cannot replace config.toml (--in-place)")
    if not args.set_list_separator:
        raise UsageError("--set-list-separator: must not be empty")
    if args.action:
        if args.sets or args.in_place or args.config_file:
            raise UsageError("`config default` takes only --output/--json")
        cfg, explicit = default_config(), set[str]()
    else:
        unknown: list[str] = []
        cfg, explicit = read_config(path, warnings=unknown)
        rewriting = bool(args.in_place or args.output)
        for line in unknown:
            note = "; not kept in the written file" if rewriting and not args.strict else ""
            print(f"gpuctk: warning: {line}{note}", file=sys.stderr)
        if unknown and args.strict:
            count = len(unknown)
            raise ConfigError(f"{path}: {count} unknown key{'s' if count > 1 else ''} (--strict)")
    for item in args.sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        try:
            value = parse_value(key, raw if sep else None, args.set_list_separator)
        except ConfigError as exc:
            raise ConfigError(f"--set {item}: {exc}") from None
        set_value(cfg, key, value)
        if value is None:
            explicit.discard(key)
        else:
            explicit.add(key)
    if args.sets:
        from gpuctk.config import validate

        validate(cfg, "--set")
    if args.json:
        import json

        text = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
    else:
        text = render(cfg, explicit)
    target = path if args.in_place else args.output
    if target:
        try:
            atomic_write(target, text)
        except OSError as exc:
            reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
            raise ConfigError(f"{target}: cannot write: {reason}") from None
    else:
        sys.stdout.write(text)
    return 0
