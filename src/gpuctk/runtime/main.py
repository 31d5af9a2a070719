"""``gpuctk-runtime``: an OCI runtime shim in front of runc/crun (nvidia-container-toolkit.md §1).

A container engine calls it exactly like runc. On ``create`` it edits the bundle's
``config.json`` for the GPUs the container asks for, then execs the real runtime with the
same arguments; every other command is exec'd untouched. On failure the error goes to
stderr and to runc's ``--log`` file, the exit code is 1, the spec is untouched and the
low-level runtime is never started.

Hot path: the standard library and gpuctk only (a test checks ``sys.modules``).
"""

from __future__ import annotations

import os
import sys

from gpuctk import __version__
from gpuctk.errors import GpuctkError
from gpuctk.runtime.log import Logger

# program basename -> forced mode (installers create these names as symlinks to the script)
MODE_BY_PROGRAM = {
    "gpuctk-runtime.cdi": "cdi",
    "gpuctk-runtime.legacy": "legacy",
    "gpuctk-runtime-cdi": "cdi",
    "gpuctk-runtime-legacy": "legacy",
    "nvidia-container-runtime.cdi": "cdi",
    "nvidia-container-runtime.legacy": "legacy",
}
OCI_SPEC_VERSION = "1.2.0"


def mode_from_program(argv0: str) -> str | None:
    return MODE_BY_PROGRAM.get(os.path.basename(argv0))


def _exec(path: str, args: list[str]) -> None:
    """Replace this process with the low-level runtime (argv[0] = its resolved path)."""
    os.execve(path, [path, *args], os.environ)


def _ensure_log(log: Logger, args: list[str]) -> None:
    """An error before logging was set up (bad config…) still reaches runc's --log file, which
    is where containerd and podman look for the reason a runtime failed."""
    if log.configured:
        return
    try:
        from gpuctk.oci.args import logging_flags

        runc_log, runc_format, _ = logging_flags(args)
        log.configure("/dev/null", "info", runc_log, runc_format)
    except Exception:
        pass


def handle_create(
    args: list[str], cfg: dict, log: Logger, mode_override: str | None = None, host: object | None = None
) -> str | None:
    """Edit the bundle's config.json for a ``create``; returns the mode used (None = untouched)."""
    from gpuctk.oci.args import bundle_dir, spec_path
    from gpuctk.oci.spec import may_request_devices, parse_spec_bytes, read_spec_bytes

    bundle = bundle_dir(args)
    log.debug(f"Using bundle directory: {bundle!r}")
    path = spec_path(bundle)
    raw = read_spec_bytes(path)
    rt = cfg["nvidia-container-runtime"]
    if not may_request_devices(raw, rt["modes"]["cdi"]["annotation-prefixes"], cfg["swarm-resource"]):
        log.debug("No GPU requested (nothing NVIDIA in the spec); passing it through unchanged")
        return None
    # only a spec that may ask for a GPU pays for JSON and the modifiers
    from gpuctk import _fastjson as fastjson
    from gpuctk.oci.spec import write_spec
    from gpuctk.runtime.host import Host
    from gpuctk.runtime.modify import modify_spec

    spec = parse_spec_bytes(path, raw)
    real_host = host if isinstance(host, Host) else Host(cfg)
    real_host.warn = log.warning
    mode = modify_spec(spec, cfg, real_host, log, mode_override)
    if mode is None:
        return None
    if spec == fastjson.loads(raw):
        log.debug("Spec unchanged; not rewriting it")
        return mode
    write_spec(path, spec)
    log.info(f"Updated OCI spec {path} (mode {mode})")
    return mode


def run(argv: list[str], mode_override: str | None = None) -> int:
    """The whole shim; returns only on failure (success execs the low-level runtime)."""
    prog = os.path.basename(argv[0]) if argv else "gpuctk-runtime"
    args = list(argv[1:])
    mode_override = mode_override or mode_from_program(prog)
    log = Logger()
    try:
        from gpuctk.config import load_config
        from gpuctk.oci.args import has_version_flag, logging_flags, modifies_spec
        from gpuctk.runtime.lowlevel import find_runtime

        version = has_version_flag(args)
        if version:
            sys.stdout.write(f"gpuctk-runtime version {__version__}\nspec: {OCI_SPEC_VERSION}\n\n")
            sys.stdout.flush()
        cfg = load_config()
        rt = cfg["nvidia-container-runtime"]
        runc_log, runc_format, runc_debug = logging_flags(args)
        log.configure(rt["debug"], rt["log-level"], runc_log, runc_format, runc_debug, open_files=not version)
        if log.enabled("debug"):
            log.debug(f"Command line arguments: {argv!r}")
        skip = frozenset({os.path.realpath(argv[0])}) if argv and argv[0] else frozenset()
        runtime = find_runtime(rt["runtimes"], skip=skip)
        log.debug(f"Using low-level runtime {runtime}")
        if modifies_spec(args):
            handle_create(args, cfg, log, mode_override)
    except GpuctkError as exc:
        _ensure_log(log, args)
        log.error(str(exc), prog)
        log.close()
        return 1
    except Exception as exc:  # a bug: still one line, still never start the container
        if os.environ.get("GPUCTK_DEBUG"):
            raise
        _ensure_log(log, args)
        log.error(f"internal error: {type(exc).__name__}: {exc}", prog)
        log.close()
        return 1
    log.close()
    try:
        _exec(runtime, args)
    except OSError as exc:
        log.error(f"cannot exec {runtime}: {exc.strerror}", prog)
        return 1
    return 1  # unreachable unless _exec is replaced (tests)


def main() -> int:
    return run(sys.argv)


def main_cdi() -> int:
    return run(sys.argv, "cdi")


def main_legacy() -> int:
    return run(sys.argv, "legacy")
