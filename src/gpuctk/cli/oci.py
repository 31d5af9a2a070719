"""`gpuctk oci …`: check and fix OCI runtime specs (config.json) for sandboxed runtimes (gVisor).

    gpuctk oci check --sandbox gvisor CONFIG_JSON [--driver-version V] [--runsc-config TOML] [--json]
    gpuctk oci fix   --sandbox gvisor CONFIG_JSON [--output FILE | --in-place]

CONFIG_JSON may be a bundle directory (its config.json is used) or ``-`` for stdin.
Exit codes: 0 no rule failed (warnings allowed); 1 a rule failed, or invalid input; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys

from gpuctk.errors import EXIT_INVALID, EXIT_OK, GpuctkError, UsageError

SANDBOXES = ("gvisor",)


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "check",
        help="check an OCI spec against a sandbox's GPU contract (gVisor nvproxy)",
        description="Report each rule of the runsc + nvproxy contract (C1–C8, L1–L8, D1–D7, S1–S5) that "
        "applies to CONFIG_JSON, with pass/warn/fail, the reason and the fix. Exit 0 when no "
        "rule fails (warnings allowed), 1 when any fails or the input is invalid, 2 on usage errors.",
    )
    _common(check)
    check.add_argument(
        "--driver-version",
        metavar="V",
        help="host driver version to compare with nvproxy's supported list "
        "(nvidia-smi --query-gpu=driver_version --format=csv,noheader)",
    )
    check.add_argument(
        "--runsc-config",
        metavar="TOML",
        help="runsc.toml used by containerd's runsc shim (binary_name, [runsc_config] flags)",
    )
    check.add_argument(
        "--driver-list",
        metavar="JSON",
        help="nvproxy supported-driver list to use instead of the shipped, dated one",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_check)

    fix = subparsers.add_parser(
        "fix",
        help='rewrite an OCI spec so the sandbox accepts it (what sandbox = "gvisor" does in the shim)',
        description="Apply the runsc-ready edits to CONFIG_JSON (drop socket mounts and unbacked device "
        "nodes, route hooks through nvidia-cdi-hook, a single NVIDIA_VISIBLE_DEVICES=void; "
        "legacy mode: the nvidia-container-runtime-hook prestart shape). Prints the spec on "
        "stdout unless --output/--in-place; warnings go to stderr.",
    )
    _common(fix)
    out = fix.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE", help="write the edited spec here (atomically)")
    out.add_argument("--in-place", action="store_true", help="rewrite CONFIG_JSON (atomically)")
    fix.set_defaults(func=_fix)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sandbox", required=True, choices=SANDBOXES, help="the sandboxed runtime (gvisor = runsc)"
    )
    p.add_argument(
        "config", metavar="CONFIG_JSON", help="OCI config.json, a bundle directory, or - for stdin"
    )


def _spec_path(arg: str) -> str:
    return os.path.join(arg, "config.json") if arg != "-" and os.path.isdir(arg) else arg


def load_oci_spec(arg: str) -> tuple[dict, str]:
    path = _spec_path(arg)
    name = "<stdin>" if path == "-" else path
    from gpuctk.fileio import load_json

    spec = load_json(path, "OCI spec")
    if not isinstance(spec, dict):
        raise GpuctkError(f"{name}: an OCI spec must be a JSON object, not {type(spec).__name__}")
    for key, kind in (
        ("process", dict),
        ("hooks", dict),
        ("linux", dict),
        ("mounts", list),
        ("annotations", dict),
        ("root", dict),
    ):
        if key in spec and spec[key] is not None and not isinstance(spec[key], kind):
            raise GpuctkError(f"{name}: {key}: must be a JSON {'object' if kind is dict else 'array'}")
    env = (spec.get("process") or {}).get("env")
    if env is not None and not isinstance(env, list):
        raise GpuctkError(f"{name}: process.env: must be a JSON array")
    return spec, name


def _load_runsc_toml(path: str) -> dict:
    import tomllib

    from gpuctk.fileio import read_limited

    try:
        with open(path, "rb") as f:
            data = tomllib.loads(read_limited(f).decode("utf-8"))
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GpuctkError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise GpuctkError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise GpuctkError(f"{path}: not valid TOML: nested too deeply") from None
    flags = data.get("runsc_config", {})
    if not isinstance(flags, dict):
        raise GpuctkError(f"{path}: runsc_config: must be a table")
    return data


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _check(args: argparse.Namespace) -> int:
    from gpuctk.sandbox.gvisor import analyze, load_driver_table

    if args.driver_version is not None and not re.fullmatch(r"\d+(\.\d+)+", args.driver_version):
        raise UsageError(f"--driver-version: expected a version like 550.54.15, got {args.driver_version!r}")
    spec, name = load_oci_spec(args.config)
    runsc_toml = _load_runsc_toml(args.runsc_config) if args.runsc_config else None
    table = load_driver_table(args.driver_list)
    report = analyze(
        spec, args.driver_version, runsc_toml=runsc_toml, driver_table=table, is_socket=_is_socket
    )
    if args.json:
        doc = {
            "spec": name,
            "sandbox": args.sandbox,
            "driver_list_date": table.get("date"),
            **report.to_dict(),
        }
        print(json.dumps(doc, indent=2))
    else:
        print(_render(report, name))
    return EXIT_INVALID if report.failed else EXIT_OK


def _render(report, name: str) -> str:
    detected = f"yes, via {report.detected_via}" if report.gpu_detected else "no"
    cli = "no"
    if report.runs_nvidia_container_cli:
        cli = "yes (it replays the legacy hook)" if report.flow == "legacy" else "yes (see D2)"
    lines = [
        f"{name}: flow {report.flow}; runsc detects a GPU request: {detected}; "
        f"runsc also runs nvidia-container-cli: {cli}"
    ]
    counts = {"pass": 0, "warn": 0, "fail": 0}
    for f in report.findings:
        counts[f.status] = counts.get(f.status, 0) + 1
        lines.append(f"{f.status.upper():4} {f.rule:3} {f.reason}")
        if f.fix and f.status != "pass":
            lines.append(f"         fix: {f.fix}")
    lines.append(f"result: {counts['fail']} fail, {counts['warn']} warn, {counts['pass']} pass")
    return "\n".join(lines)


def _fix(args: argparse.Namespace) -> int:
    from gpuctk.fileio import atomic_write
    from gpuctk.sandbox.gvisor import runsc_ready_oci_spec

    spec, name = load_oci_spec(args.config)
    warnings = runsc_ready_oci_spec(spec)
    for w in warnings:
        print(f"gpuctk: warning: {w}", file=sys.stderr)
    text = json.dumps(spec, indent=2) + "\n"
    target = args.output or (_spec_path(args.config) if args.in_place else None)
    if args.in_place and name == "<stdin>":
        raise UsageError("--in-place needs a file, not stdin")
    if target is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        atomic_write(target, text)
    except OSError as exc:
        reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
        raise GpuctkError(f"{target}: cannot write: {reason}") from None
    return EXIT_OK
