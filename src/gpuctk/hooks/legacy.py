"""``gpuctk-runtime-hook [--debug] [--config FILE] prestart|poststart|poststop``: the legacy
OCI prestart hook. It turns the container's requests into an ``nvidia-container-cli``
command line (upstream: NVIDIA/nvidia-container-toolkit ``cmd/nvidia-container-runtime-hook/main.go``)
and execs it; poststart/poststop do nothing.

Exit codes: 0 ok (also: not a GPU container), 1 failure (one line, never a traceback), 2 usage.

Hostile input: the state on stdin and ``<bundle>/config.json`` are read bounded and
non-blocking (a FIFO or ``/dev/zero`` there is an error, not a hang); deep nesting is a
one-line error. Like upstream, the config path (``NVIDIA_CTK_CONFIG_FILE_PATH``) and the
``PATH`` used to find ``nvidia-container-cli`` come from the environment: this is a *prestart*
hook, which runtimes run from their own process with their own environment (runc: the parent
``runc create``), not the container's; docs/security.md says why and what that trusts.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from gpuctk.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_USAGE, GpuctkError

PROG = "gpuctk-runtime-hook"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USAGE = f"usage: {PROG} [--debug] [--version] [--config FILE] {{prestart|poststart|poststop}}\n"


def _parse(argv: list[str]) -> tuple[dict[str, Any], str | None]:
    """Go-flag style: -x and --x, ``--config FILE`` or ``--config=FILE``; then one command."""
    opts: dict[str, Any] = {"debug": False, "config": None, "version": False}
    cmd = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and cmd is None:
            name, eq, val = a.lstrip("-").partition("=")
            if name == "debug":
                opts["debug"] = True
            elif name == "version":
                opts["version"] = True
            elif name in ("h", "help"):
                opts["help"] = True
            elif name == "config":
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise GpuctkError("flag needs an argument: --config", exit_code=EXIT_USAGE)
                    val = argv[i]
                opts["config"] = val
            else:
                raise GpuctkError(f"flag provided but not defined: {a}", exit_code=EXIT_USAGE)
        elif cmd is None:
            cmd = a
        i += 1
    return opts, cmd


def _load_bundle_spec(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    bundle = state.get("bundle") or state.get("bundlePath")
    if not isinstance(bundle, str) or not bundle:
        raise GpuctkError("OCI state on stdin: field bundle: missing")
    if "\0" in bundle:
        raise GpuctkError("OCI state on stdin: field bundle: NUL byte in path")
    from gpuctk.hooks.hostio import CONFIG_JSON_LIMIT, read_host_file

    path = os.path.join(bundle, "config.json")
    spec = _json(read_host_file(path, CONFIG_JSON_LIMIT, "bundle config"), path)
    if not isinstance(spec, dict):
        raise GpuctkError(f"{path}: expected a JSON object")
    for field in ("ociVersion", "process", "root"):
        if field not in spec:
            raise GpuctkError(f"{path}: field {field}: missing")
    root = spec["root"].get("path") if isinstance(spec["root"], dict) else None
    if not isinstance(root, str) or not root:
        raise GpuctkError(f"{path}: field root.path: missing")
    if not os.path.isabs(root):
        root = os.path.join(bundle, root)
    return spec, os.path.normpath(root)


def _json(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise GpuctkError(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:
        raise GpuctkError(f"{source}: not valid JSON (nested too deeply)") from None


def _is_exe(p: str) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def prestart(debug: bool, config_file: str | None, stdin: bytes) -> int:
    from gpuctk.config import read_config
    from gpuctk.hooks.legacy_argv import CDI_HINT, build_argv, cli_env, find_cli

    explicit = config_file or os.environ.get("NVIDIA_CTK_CONFIG_FILE_PATH")
    cfg, _ = read_config(explicit, required=bool(explicit))
    state = _json(stdin, "OCI state on stdin")
    if not isinstance(state, dict):
        raise GpuctkError("OCI state on stdin: expected a JSON object")
    spec, rootfs = _load_bundle_spec(state)
    pid = state.get("pid") if isinstance(state.get("pid"), int) else None
    cli = find_cli(cfg, os.environ.get("PATH") or SYSTEM_PATH, _is_exe)
    argv = build_argv(
        cfg, spec, cli_path=cli or "nvidia-container-cli", rootfs=rootfs, pid=pid, hook_debug=debug
    )
    if argv is None:
        return 0  # not a GPU container
    if cli is None:
        where = (cfg.get("nvidia-container-cli") or {}).get("path") or "PATH"
        raise GpuctkError(
            f"nvidia-container-cli not found (looked in {where}); the legacy hook needs "
            f"libnvidia-container installed. Or {CDI_HINT}"
        )
    if debug:
        print(f"{PROG}: exec {' '.join(argv)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cli, argv, cli_env(dict(os.environ), cfg))
    return EXIT_INVALID  # pragma: no cover - execve does not return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, cmd = _parse(args)
        if opts.get("help"):
            sys.stdout.write(USAGE)
            return 0
        if opts["version"]:
            from gpuctk import __version__

            print(f"{PROG} {__version__}")
            return 0
        if cmd in ("poststart", "poststop"):
            return 0
        if cmd != "prestart":
            sys.stderr.write(USAGE)
            return EXIT_USAGE
        from gpuctk.hooks.hostio import read_stdin

        return prestart(opts["debug"], opts["config"], read_stdin())
    except GpuctkError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (RecursionError, MemoryError) as exc:
        print(f"{PROG}: error: input too large or nested too deeply ({type(exc).__name__})", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # one line, never a traceback into the runtime's log
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
