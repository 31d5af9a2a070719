"""``gpuctk-runtime``: an OCI runtime shim in front of runc/crun (NVIDIA/nvidia-container-toolkit
`internal/runtime/runtime.go`, `cmd/nvidia-container-runtime/main.go`).

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
from gpuctk.config.load import ConfigError
from gpuctk.errors import GpuctkError
from gpuctk.runtime.log import Logger

TYPE_CHECKING = False  # no `typing` on the create path
if TYPE_CHECKING:
    from gpuctk.config.types import ConfigDict

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
    args: list[str],
    cfg: ConfigDict,
    log: Logger,
    mode_override: str | None = None,
    host: object | None = None,
    invalid: dict[str, str] | None = None,
) -> str | None:
    """Edit the bundle's config.json for a ``create``; returns the mode used (None = untouched).

    ``invalid``: config keys whose values were unusable (dotted key -> one-line error naming
    the file and key); a container that may ask for a GPU fails on them, any other ignores them.
    """
    from gpuctk.oci.args import bundle_dir, spec_path
    from gpuctk.oci.spec import may_request_devices, parse_spec_bytes, read_spec_bytes

    bundle = bundle_dir(args)
    log.debug(f"Using bundle directory: {bundle!r}")
    path = spec_path(bundle)
    raw = read_spec_bytes(path)
    rt = cfg["nvidia-container-runtime"]
    if not may_request_devices(raw, rt["modes"]["cdi"]["annotation-prefixes"], cfg["swarm-resource"]):
        log.debug("No GPU requested (nothing NVIDIA in the spec); passing it through unchanged")
        for msg in (invalid or {}).values():
            log.warning(f"{msg}; using the default (not needed by this container)")
        return None
    if invalid:
        raise ConfigError(_invalid_summary(invalid))
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


def _invalid_summary(invalid: dict[str, str]) -> str:
    first = next(iter(invalid.values()))
    more = len(invalid) - 1
    return first + (f" (and {more} more invalid key{'s' if more > 1 else ''})" if more else "")


def _load_config(creating: bool) -> tuple[ConfigDict, list[str], dict[str, str]]:
    """The toolkit config for this call. Unknown keys are warnings. A ``create`` fails on a
    file it cannot read or parse; a pass-through command (state, kill, delete, ...) never fails
    because of the toolkit config: it goes on with the defaults."""
    from gpuctk.config import load_config

    warnings: list[str] = []
    invalid: dict[str, str] = {}
    try:
        cfg = load_config(warnings=warnings, invalid=invalid)
    except GpuctkError as exc:
        if creating:
            raise
        from gpuctk.config.load import default_config_typed

        return default_config_typed(), [f"{exc}; using the defaults"], {}
    runtimes = "nvidia-container-runtime.runtimes"
    for key, message in invalid.items():
        if creating and (key == runtimes or runtimes.startswith(key + ".")):
            raise ConfigError(message)  # every container needs its low-level runtime
    if not creating:
        warnings += [f"{msg}; using the default" for msg in invalid.values()]
        invalid = {}
    return cfg, warnings, invalid


def run(argv: list[str], mode_override: str | None = None) -> int:
    """The whole shim; returns only on failure (success execs the low-level runtime)."""
    prog = os.path.basename(argv[0]) if argv else "gpuctk-runtime"
    args = list(argv[1:])
    mode_override = mode_override or mode_from_program(prog)
    log = Logger()
    try:
        from gpuctk.oci.args import has_version_flag, logging_flags, modifies_spec
        from gpuctk.runtime.lowlevel import find_runtime

        version = has_version_flag(args)
        if version:
            sys.stdout.write(f"gpuctk-runtime version {__version__}\nspec: {OCI_SPEC_VERSION}\n\n")
            sys.stdout.flush()
        from gpuctk.runtime import frontend

        fe_state = frontend.config_state()  # before the config is read: see frontend.config_state
        creating = modifies_spec(args)
        cfg, warnings, invalid = _load_config(creating)
        rt = cfg["nvidia-container-runtime"]
        runc_log, runc_format, runc_debug = logging_flags(args)
        log.configure(rt["debug"], rt["log-level"], runc_log, runc_format, runc_debug, open_files=not version)
        for w in warnings:
            log.warning(w)
        if log.enabled("debug"):
            log.debug(f"Command line arguments: {argv!r}")
        skip = frozenset({os.path.realpath(argv[0])}) if argv and argv[0] else frozenset()
        runtime = find_runtime(rt["runtimes"], skip=skip)
        log.debug(f"Using low-level runtime {runtime}")
        frontend.record(fe_state, runtime, rt)  # for the sh front end's pass-through
        if creating:
            handle_create(args, cfg, log, mode_override, invalid=invalid)
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
