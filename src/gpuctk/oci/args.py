"""A low-level runtime's argv as the shim sees it (NVIDIA/nvidia-container-toolkit
`internal/oci/args.go`).

runc-style command lines put global flags first (``--root X --log Y create --bundle B ID``).
The shim only needs three facts: is this ``create``, where is the bundle, and which of
runc's logging flags (``--log``, ``--log-format``, ``--debug``) were given.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError


class ArgsError(GpuctkError):
    """The command line cannot be understood (e.g. a bundle flag without a value)."""


def _flag_name(arg: str) -> tuple[str, str | None] | None:
    """``--name=value`` → (name, value); ``-name`` → (name, None); non-flags → None."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    body = arg.lstrip("-")
    name, sep, value = body.partition("=")
    return name, (value if sep else None)


def _is_bundle_flag(name: str) -> bool:
    return name in ("b", "bundle")


def bundle_dir(argv: list[str]) -> str:
    """The value of the last bundle flag (``--bundle``, ``-bundle``, ``-b``, ``=``-joined or
    separate), or ``""`` when there is none. A bundle flag without a value is an error."""
    bundle = ""
    i = 0
    while i < len(argv):
        parsed = _flag_name(argv[i])
        if parsed is not None and _is_bundle_flag(parsed[0]):
            if parsed[1] is not None:
                bundle = parsed[1]
            elif i + 1 < len(argv):
                bundle = argv[i + 1]
                i += 1
            else:
                raise ArgsError("bundle option requires an argument")
        i += 1
    return bundle


def spec_path(bundle: str) -> str:
    """``config.json`` inside the bundle; an empty bundle means the current directory."""
    return os.path.join(bundle, "config.json")


def has_create(argv: list[str]) -> bool:
    """True when ``create`` is the subcommand; ``--bundle create`` names a bundle instead."""
    prev_is_bare_bundle_flag = False
    for arg in argv:
        if arg == "create" and not prev_is_bare_bundle_flag:
            return True
        parsed = _flag_name(arg)
        prev_is_bare_bundle_flag = parsed is not None and _is_bundle_flag(parsed[0]) and parsed[1] is None
    return False


def subcommand(argv: list[str]) -> str | None:
    """The first positional argument after runc's global flags (``create``, ``run``, ``state``…)."""
    i = 0
    while i < len(argv):
        parsed = _flag_name(argv[i])
        if parsed is None:
            return None if argv[i] == "--" else argv[i]
        if parsed[0] in _VALUE_FLAGS and parsed[1] is None:
            i += 1
        i += 1
    return None


def modifies_spec(argv: list[str]) -> bool:
    """``create`` (upstream's rule, `internal/oci/args.go`), or ``run`` as the subcommand: ``run`` is create+start in
    one call and reads the same config.json (a gpuctk extension; engines themselves use create)."""
    return has_create(argv) or subcommand(argv) == "run"


def has_version_flag(argv: list[str]) -> bool:
    """Any ``-version``/``--version`` style flag (value after ``=`` ignored)."""
    for arg in argv:
        parsed = _flag_name(arg)
        if parsed is not None and parsed[0] == "version":
            return True
    return False


_VALUE_FLAGS = frozenset({"log", "log-format", "root", "criu", "rootless"})  # runc globals taking a value


def logging_flags(argv: list[str]) -> tuple[str | None, str | None, bool]:
    """runc's global ``--log FILE``, ``--log-format FORMAT`` and ``--debug`` (the last of each wins).

    Only flags before the subcommand are global; a container id or bundle named like a flag
    after the subcommand is not ours to read, so scanning stops at the first non-flag that is
    not a flag's value.
    """
    log_file: str | None = None
    log_format: str | None = None
    debug = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        parsed = _flag_name(arg)
        if parsed is None:
            break
        name, value = parsed
        if name in _VALUE_FLAGS and value is None:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        if name == "log":
            log_file = value
        elif name == "log-format":
            log_format = value
        elif name == "debug":
            debug = value is None or value.lower() in ("1", "t", "true")
        i += 1
    return log_file, log_format, debug
