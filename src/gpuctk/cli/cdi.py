"""`gpuctk cdi validate|list|inject` (``generate``/``transform`` live in cli/generate.py).

Heavy work is imported inside the handlers so ``gpuctk cdi inject`` stays cheap to start.
"""

from __future__ import annotations

import argparse
import json
import sys

from gpuctk.errors import EXIT_INVALID, EXIT_OK, GpuctkError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check CDI spec files",
        description="Check CDI spec files (JSON or YAML) like the reference library does. Prints "
        "'FILE: FIELD: MESSAGE' for each problem; exit 1 if any file is invalid.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="spec file (.json is JSON, anything else YAML)")
    p.add_argument(
        "--min-version",
        action="store_true",
        help="also print each file's minimum CDI version ('FILE: minimum version X.Y.Z')",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document with the results")
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser(
        "list",
        help="list the CDI devices in the spec dirs",
        description="Print the qualified names of the devices the spec dirs define (later dirs win). "
        "Problems with spec files, and spec files the runtime would not trust when it runs as root "
        "(not owned by root, or group/other-writable, or in such a directory), are reported on stderr "
        "and do not change the exit code.",
    )
    p.add_argument(
        "--spec-dir",
        action="append",
        dest="spec_dirs",
        metavar="DIR",
        help="spec directory (repeatable; default /etc/cdi then /var/run/cdi)",
    )
    p.add_argument(
        "--json", action="store_true", help="print devices (with source file), spec dirs and errors as JSON"
    )
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser(
        "inject",
        help="apply CDI devices to an OCI config.json",
        description="Apply CDI devices to an OCI runtime spec (config.json) with the reference "
        "semantics. Nothing is changed unless every device resolves.",
    )
    p.add_argument("config", metavar="CONFIG_JSON", help="OCI runtime spec; '-' reads stdin")
    p.add_argument(
        "--device",
        action="append",
        dest="devices",
        required=True,
        metavar="NAME",
        help="qualified device name vendor/class=name (repeatable; comma-separated allowed)",
    )
    p.add_argument(
        "--spec-dir",
        action="append",
        dest="spec_dirs",
        metavar="DIR",
        help="spec directory (repeatable; default /etc/cdi then /var/run/cdi)",
    )
    p.add_argument(
        "--in-place", action="store_true", help="rewrite CONFIG_JSON atomically instead of printing"
    )
    p.set_defaults(func=cmd_inject)


def cmd_validate(args: argparse.Namespace) -> int:
    import os

    from gpuctk.cdi.errors import escape, strip_source
    from gpuctk.cdi.model import inspect_spec_file
    from gpuctk.cdi.registry import trust_problem
    from gpuctk.cdi.version import minimum_version_of

    results = []
    any_invalid = False
    as_root = os.geteuid() == 0
    for path in args.files:
        canonical, file_error, problems = inspect_spec_file(path)
        # what the runtime shim (running as root) would do with this file: a valid spec it
        # does not trust is reported, but is not invalid (ownership is the node's, not the spec's)
        ignored = trust_problem(path) if as_root and file_error is None else None
        entry: dict[str, object] = {
            "file": path,
            "valid": not file_error and not problems,
            "problems": ([file_error] if file_error else []) + problems,
        }
        if ignored:
            entry["ignored"] = ignored
        if canonical is not None:
            entry["declared_version"] = canonical.get("cdiVersion", "")
            entry["minimum_version"] = minimum_version_of(canonical)
        any_invalid = any_invalid or not entry["valid"]
        results.append(entry)
        if args.json:
            continue
        name = escape(path)
        if file_error:
            print(f"{name}: {strip_source(file_error, name)}")
        for problem in problems:
            print(f"{name}: {escape(problem)}")
        if ignored:
            print(f"{name}: warning: ignored by the runtime running as root: {escape(ignored)}")
        if args.min_version and canonical is not None:
            print(f"{name}: minimum version {entry['minimum_version']}")
    if args.json:
        print(json.dumps({"files": results}, indent=2))
    return EXIT_INVALID if any_invalid else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from gpuctk.cdi import Registry

    # trusted_only: the devices the runtime shim (as root) would use; the others are reported
    # with the reason ("ignored: the file is owned by uid 1000, not root")
    reg = Registry(spec_dirs=args.spec_dirs, trusted_only=True)
    errors = reg.errors()
    if args.json:
        devices = [
            {"name": n, "spec": dev.spec.source, "kind": dev.spec.kind, "cdiVersion": dev.spec.version}
            for n in reg.list_devices()
            if (dev := reg.get_device(n)) is not None
        ]
        print(json.dumps({"spec_dirs": reg.spec_dirs, "devices": devices, "errors": errors}, indent=2))
    else:
        for name in reg.list_devices():
            print(name)
    _print_errors(errors)
    return EXIT_OK


def _print_errors(errors: dict[str, list[str]]) -> None:
    from gpuctk.cdi.errors import escape

    for path, msgs in errors.items():
        for msg in msgs:
            print(f"gpuctk: warning: {escape(path)}: {escape(msg)}", file=sys.stderr)


def cmd_inject(args: argparse.Namespace) -> int:
    from gpuctk.cdi import CDIError, Registry
    from gpuctk.errors import UsageError

    names = [n.strip() for arg in args.devices for n in arg.split(",") if n.strip()]
    if not names:
        raise UsageError("--device: no device name given")
    if args.in_place and args.config == "-":
        raise UsageError("--in-place needs a file, not stdin")
    oci = _read_config(args.config)
    # cache=True: parsed specs reused while no spec file changes (root only; gpuctk.cdi.cache)
    reg = Registry(spec_dirs=args.spec_dirs, cache=True)
    try:
        reg.inject_devices(oci, names)
    except CDIError:
        _print_errors(reg.errors())
        raise
    out = json.dumps(oci, indent=2) + "\n"
    if args.in_place:
        from gpuctk.fileio import atomic_write

        try:
            atomic_write(args.config, out)
        except OSError as exc:
            reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
            raise GpuctkError(f"{args.config}: cannot write: {reason}") from None
    else:
        sys.stdout.write(out)
    return EXIT_OK


def _read_config(path: str) -> dict:
    from gpuctk.fileio import load_json

    doc = load_json(path, "OCI spec")
    if not isinstance(doc, dict):
        raise GpuctkError(f"{path}: an OCI spec must be a JSON object")
    from gpuctk.oci.spec import check_spec_shape

    check_spec_shape(path, doc)  # "FILE: process.env: must be a list", before any device is resolved
    return doc
