"""``gpuctk-hook <name> [flags]``: the CDI hooks, same as ``gpuctk hook`` (upstream:
NVIDIA/nvidia-container-toolkit ``cmd/nvidia-cdi-hook/main.go`` and ``commands/commands.go``).

Exit codes: 0 ok (also for an unknown hook name: specs written by other versions must
not break containers), 1 failed operation / bad input / deadline passed, 2 bad flags of a
known hook.

Nothing the hook does depends on its environment except log verbosity (``NVIDIA_CTK_DEBUG``,
``NVIDIA_CTK_QUIET`` and their aliases, as upstream): runc may hand a hook the *image's*
environment. Limits and test switches are argv flags before the hook name:
``--timeout SECONDS`` (the one deadline of the whole run, clamped to 0.5..60 s) and the
hidden ``--resolver=walk`` (force the openat2-less resolver; tests).
"""

from __future__ import annotations

import os
import sys

from gpuctk.errors import EXIT_INTERNAL, EXIT_INVALID, EXIT_USAGE, GpuctkError

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PROG = "gpuctk-hook"
SUBCOMMAND_STEPS = "run-steps"  # gpuctk.hooks.steps.SUBCOMMAND (not imported: start-up)
DEBUG_ENVS = ("NVIDIA_CTK_DEBUG", "NVIDIA_CDI_DEBUG", "GPUCTK_DEBUG")
QUIET_ENVS = ("NVIDIA_CTK_QUIET", "NVIDIA_CDI_QUIET")
# never passed on to anything we start, whoever set them (CVE-2025-23266)
LOADER_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")


DEFAULT_TIMEOUT = 10.0  # gpuctk.hooks.deadline.DEFAULT_S (not imported here: help text only)


class _UsageError(Exception):
    pass


class Flag:
    def __init__(
        self,
        name: str,
        metavar: str,
        help_text: str,
        *,
        repeat: bool = False,
        required: bool = False,
        default: str | None = None,
    ) -> None:
        # repeat: a list flag; like upstream's urfave/cli slice flags, each value is also split
        # on "," (``--folder A,B`` is two folders)
        self.name, self.metavar, self.help, self.repeat = name, metavar, help_text, repeat
        self.required, self.default = required, default

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


COMMON = [Flag("container-spec", "FILE", "read the OCI state from FILE instead of stdin ('-': stdin)")]

# name -> (help, flags); help None = hidden. (A hand-rolled parser: argparse costs ~10 ms of
# start-up, and the hooks run on every container start.)
HOOKS: dict[str, tuple[str | None, list[Flag]]] = {
    "create-symlinks": (
        "create symlinks inside the container (idempotent, atomic)",
        [
            Flag(
                "link",
                "TARGET::LINK",
                "create LINK (container path) pointing at TARGET (repeatable, comma-separated)",
                repeat=True,
            )
        ],
    ),
    "update-ldcache": (
        "add library folders to the container's loader config and rebuild ld.so.cache",
        [
            Flag("folder", "DIR", "container folder to add (repeatable, comma-separated)", repeat=True),
            Flag(
                "ldconfig-path",
                "PATH",
                "HOST ldconfig to run (default /sbin/ldconfig, ldconfig.real preferred; '@' prefix accepted)",
            ),
        ],
    ),
    "enable-cuda-compat": (
        "use the image's CUDA forward-compat libraries when newer than the host driver",
        [
            Flag("host-driver-version", "V", "host driver version, e.g. 550.54.15", default=""),
            Flag("host-cuda-version", "C", "host CUDA version, e.g. 12.4", default=""),
            Flag(
                "cuda-compat-container-root",
                "PATH",
                "compat libraries in the container",
                default="/usr/local/cuda/compat",
            ),
        ],
    ),
    "disable-device-node-modification": (
        "mask /proc/driver/nvidia/params with ModifyDeviceFiles: 0",
        [
            Flag(
                "host-params-file",
                "FILE",
                "host params file to read (default /proc/driver/nvidia/params)",
            )
        ],
    ),
    "update-application-profile": ("limit EGL to the container's GPUs with a driver application profile", []),
    "chmod": (
        "set the mode of paths inside the container",
        [
            Flag("mode", "MODE", "octal mode, e.g. 755", required=True),
            Flag("path", "PATH", "container path (repeatable, comma-separated)", repeat=True),
        ],
    ),
    "noop": (None, []),
}


class Args:
    """Parsed flags of one hook, as attributes (``args.link``, ``args.ldconfig_path``)."""

    def __init__(self, flags: list[Flag]) -> None:
        for f in flags:
            setattr(self, f.dest, [] if f.repeat else f.default)

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes are set dynamically
        raise AttributeError(name)


def hook_help(name: str, prog: str = PROG) -> str:
    help_text, flags = HOOKS[name]
    lines = [f"usage: {prog} {name} [flags]", ""]
    if help_text:
        lines += [help_text, ""]
    for f in [*flags, *COMMON]:
        lines.append(f"  --{f.name} {f.metavar:14} {f.help}{' (required)' if f.required else ''}")
    return "\n".join(lines) + "\n"


def parse_flags(name: str, argv: list[str], prog: str = PROG, help_ok: bool = True) -> Args | None:
    """Go-style flags: ``--x v``, ``--x=v``, ``-x v``; None when help was asked for."""
    flags = {f.name: f for f in [*HOOKS[name][1], *COMMON]}
    ns = Args(list(flags.values()))
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("-h", "--help", "-help") and help_ok:
            sys.stdout.write(hook_help(name, prog))
            return None
        if not a.startswith("-") or a in ("-", "--"):
            raise _UsageError(f"{name}: unexpected argument {a!r}")
        key, eq, value = a.lstrip("-").partition("=")
        f = flags.get(key)
        if f is None:
            raise _UsageError(f"{name}: flag provided but not defined: {a}")
        if not eq:
            if i >= len(argv):
                raise _UsageError(f"{name}: flag needs an argument: --{key}")
            value = argv[i]
            i += 1
        if f.repeat:
            getattr(ns, f.dest).extend(value.split(","))
        else:
            setattr(ns, f.dest, value)
    for f in flags.values():
        if f.required and getattr(ns, f.dest) in (None, ""):
            raise _UsageError(f"{name}: required flag --{f.name} not set")
    return ns


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def _logger(name: str, debug: bool) -> Any:
    def log(msg: str) -> None:
        if debug:
            print(f"{PROG}: {name}: {msg}", file=sys.stderr)

    return log


def _run(name: str, args: Args, debug: bool = False, fallback: bool | None = None) -> int:
    from gpuctk.hooks.confine import Root
    from gpuctk.hooks.state import load_state

    log = _logger(name, debug)
    if name == "noop":
        return 0
    state = load_state(container_spec=args.container_spec)
    log(f"container root {state.root}")
    if name == "chmod":  # validate flags before touching anything
        from gpuctk.hooks.simple import parse_mode

        parse_mode(args.mode)
    with Root(state.root, fallback=fallback) as root:
        log("resolver: " + ("component walk (no openat2)" if root.fallback else "openat2 RESOLVE_IN_ROOT"))
        _step(name, args, root, log)
    return 0


def _step(name: str, args: Args, root: Any, log: Any) -> None:
    """One hook's work on an open root (the same code for a single hook and for run-steps)."""
    if name == "create-symlinks":
        from gpuctk.hooks.simple import create_symlinks, parse_links

        log(f"created/replaced: {create_symlinks(root, parse_links(args.link)) or 'nothing (all correct)'}")
    elif name == "update-ldcache":
        from gpuctk.hooks.ldfresh import ldcache_up_to_date

        if ldcache_up_to_date(root, args.folder):
            log("/etc/ld.so.cache already up to date: nothing written, ldconfig not run")
            return
        from gpuctk.hooks.ldcache import update_ldcache

        log(f"wrote {update_ldcache(root, args.folder, args.ldconfig_path)} and rebuilt /etc/ld.so.cache")
    elif name == "enable-cuda-compat":
        from gpuctk.hooks.compat import enable_cuda_compat

        conf = enable_cuda_compat(
            root,
            args.host_driver_version or None,
            args.host_cuda_version or None,
            args.cuda_compat_container_root,
        )
        log(f"wrote {conf}" if conf else "compat libraries not used")
    elif name == "disable-device-node-modification":
        from gpuctk.hooks.params import disable_device_node_modification

        done = disable_device_node_modification(root, args.host_params_file)
        log("masked /proc/driver/nvidia/params" if done else "nothing to mask")
    elif name == "update-application-profile":
        from gpuctk.hooks.simple import update_application_profile

        log("profile written" if update_application_profile(root) else "no GPU device nodes: nothing written")
    elif name == "chmod":
        from gpuctk.hooks.simple import chmod_paths, parse_mode

        log(f"changed: {chmod_paths(root, parse_mode(args.mode), args.path)}")


class _StepFailed(Exception):
    def __init__(self, label: str, exc: BaseException) -> None:
        super().__init__(label)
        self.label, self.exc = label, exc


def parse_steps(
    words: list[str], prog: str = PROG, quiet: bool = False
) -> tuple[str | None, list[tuple[str, Args]]]:
    """(``--container-spec`` of the batch, [(step name, parsed flags)…]) of the words after
    ``run-steps``; every step is parsed (and chmod modes checked) before any work starts.
    An unknown step name is a warning and skipped, as a lone unknown hook is."""
    from gpuctk.hooks.simple import parse_mode
    from gpuctk.hooks.steps import StepsError, decode

    container_spec = None
    if words and (words[0] == "--container-spec" or words[0].startswith("--container-spec=")):
        _key, eq, value = words[0].partition("=")
        if not eq:
            if len(words) < 2:
                raise _UsageError(f"{SUBCOMMAND_STEPS}: flag needs an argument: --container-spec")
            value, words = words[1], words[2:]
        else:
            words = words[1:]
        container_spec = value
    try:
        raw = decode(words)
    except StepsError as exc:
        raise _UsageError(f"{SUBCOMMAND_STEPS}: {exc}") from None
    out: list[tuple[str, Args]] = []
    for n, step in enumerate(raw, 1):
        name = step[0]
        if name not in HOOKS or name == SUBCOMMAND_STEPS:
            if not quiet:
                print(
                    f"{prog}: warning: {SUBCOMMAND_STEPS}: step {n}: unsupported hook {name!r}; skipped",
                    file=sys.stderr,
                )
            continue
        try:
            ns = parse_flags(name, step[1:], prog, help_ok=False)
        except _UsageError as exc:
            raise _UsageError(f"{SUBCOMMAND_STEPS}: step {n}: {exc}") from None
        assert ns is not None  # help_ok=False: -h is an undefined flag
        if ns.container_spec not in (None, ""):
            raise _UsageError(
                f"{SUBCOMMAND_STEPS}: step {n}: {name}: --container-spec belongs before the steps (one state per run)"
            )
        if name == "chmod":
            try:
                parse_mode(ns.mode)
            except GpuctkError as exc:
                raise _UsageError(f"{SUBCOMMAND_STEPS}: step {n}: chmod: {exc}") from None
        out.append((name, ns))
    return container_spec, out


def _run_steps(
    container_spec: str | None, steps: list[tuple[str, Args]], debug: bool, fallback: bool | None
) -> int:
    """All steps in order on ONE parse of the state and ONE open root; the first failing step
    stops the run (runc stops at the first failing hook too). Each step gets the work budget
    a lone hook gets; the deadline is the run's."""
    from gpuctk.hooks.confine import Root
    from gpuctk.hooks.state import load_state

    work = [(n, name, ns) for n, (name, ns) in enumerate(steps, 1) if name != "noop"]
    if not work:
        return 0
    state = load_state(container_spec=container_spec)
    _logger(SUBCOMMAND_STEPS, debug)(f"container root {state.root}; {len(work)} steps")
    with Root(state.root, fallback=fallback) as root:
        for n, name, ns in work:
            root.components = root.lookups = 0  # the budget of a lone hook, per step
            try:
                _step(name, ns, root, _logger(name, debug))
            except Exception as exc:
                raise _StepFailed(f"{SUBCOMMAND_STEPS}: step {n} ({name})", exc) from None
    return 0


def _usage() -> str:
    names = "\n".join(f"  {n:34} {h}" for n, (h, _) in HOOKS.items() if h)
    return (
        f"usage: {PROG} [--debug] [--quiet] [--timeout SECONDS] HOOK [flags]\n\nRun one CDI hook against the "
        f"container named by the OCI state on stdin.\n\nhooks:\n{names}\n\nAn unknown hook name is a warning "
        f"(exit 0).\n\n{PROG} [global flags] {SUBCOMMAND_STEPS} [--container-spec FILE] N1 HOOK1 [flags] N2 HOOK2 ...\n"
        f"runs several hooks in one process, in order, on one read of the state; N is the number of "
        f"words of the step that follows (its name included).\n--timeout: the deadline of the whole run (default {DEFAULT_TIMEOUT:g}s, 0.5..60).\n"
    )


def run(argv: Sequence[str], prog: str = PROG) -> int:
    """Parse and run one hook; never raises for user errors."""
    from gpuctk.hooks import deadline

    for var in LOADER_ENV:
        os.environ.pop(var, None)
    args = list(argv)
    debug = any(_truthy(os.environ.get(v)) for v in DEBUG_ENVS)
    quiet = any(_truthy(os.environ.get(v)) for v in QUIET_ENVS)
    timeout = deadline.DEFAULT_S
    fallback: bool | None = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        key, eq, value = flag.partition("=")
        if flag in ("-d", "--debug"):
            debug = True
        elif flag in ("-q", "--quiet"):
            quiet = True
        elif flag in ("-h", "--help"):
            sys.stdout.write(_usage())
            return 0
        elif flag == "--version":
            from gpuctk import __version__

            print(f"{prog} {__version__}")
            return 0
        elif key in ("--timeout", "--resolver"):
            if not eq:
                if not args:
                    print(f"{prog}: error: flag needs an argument: {key}", file=sys.stderr)
                    return EXIT_USAGE
                value = args.pop(0)
            if key == "--resolver":
                if value not in ("auto", "walk"):
                    print(f"{prog}: error: --resolver {value!r}: expected auto or walk", file=sys.stderr)
                    return EXIT_USAGE
                fallback = True if value == "walk" else None
                continue
            try:
                timeout = deadline.parse(value)
            except ValueError:
                print(f"{prog}: error: --timeout {value!r}: expected seconds", file=sys.stderr)
                return EXIT_USAGE
        else:
            if not quiet:
                print(f"{prog}: warning: unknown flag {flag}; ignored", file=sys.stderr)
    ns: Args | None = None
    container_spec: str | None = None
    steps: list[tuple[str, Args]] = []
    if args and args[0] == SUBCOMMAND_STEPS:
        name = SUBCOMMAND_STEPS
        try:
            container_spec, steps = parse_steps(args[1:], prog, quiet)
        except _UsageError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    elif not args or args[0] not in HOOKS:
        if not quiet:
            what = f"unsupported hook {args[0]!r}" if args else "no hook given"
            print(f"{prog}: warning: {what}; nothing done", file=sys.stderr)
        return 0
    else:
        name = args[0]
        try:
            ns = parse_flags(name, args[1:], prog)
        except _UsageError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if ns is None:
            return 0
    # one line whatever happens: no traceback, whatever the image put in front of us
    try:
        deadline.arm(timeout)
        try:
            if name == SUBCOMMAND_STEPS:
                try:
                    return _run_steps(container_spec, steps, debug, fallback)
                except _StepFailed as failed:
                    name = failed.label
                    raise failed.exc from None
            return _run(name, ns, debug, fallback) if ns is not None else 0
        finally:
            deadline.disarm()
    except deadline.HookDeadline as exc:
        print(f"{prog}: error: {name}: {exc}; nothing more done", file=sys.stderr)
        return EXIT_INVALID
    except GpuctkError as exc:
        print(f"{prog}: error: {name}: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{prog}: error: {name}:{where} {_one_line(str(exc.strerror or exc))}", file=sys.stderr)
        return EXIT_INVALID
    except (RecursionError, MemoryError) as exc:
        print(
            f"{prog}: error: {name}: input too large or nested too deeply ({type(exc).__name__})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    except Exception as exc:
        print(f"{prog}: internal error: {name}: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(text: str) -> str:
    """Control characters (image-chosen names may hold newlines) escaped, and a length cap."""
    out = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return out if len(out) <= 1000 else out[:1000] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


def entry() -> None:
    """The installed ``gpuctk-hook``'s entry (its sh front end calls this): :func:`main`, then
    out with ``os._exit``. A hook is one process per container start, and the interpreter's
    teardown (freeing every module, a final garbage collection) would cost it a few ms more
    than its work: everything the hook opened is closed and every child waited for by the time
    :func:`run` returns, so only the two output streams are left to flush."""
    rc = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed or broken stdout/stderr: nothing more can be said
    os._exit(rc if 0 <= rc <= 255 else EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
