"""`gpuctk runtime configure|detect`: edit container-engine configs, report native-CDI support."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gpuctk.errors import GpuctkError, UsageError

ENGINES = ("containerd", "crio", "docker")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "configure",
        help="add the GPU runtime (and CDI settings) to containerd, CRI-O or Docker",
        description="Add the GPU runtime to a container engine's config: a drop-in file plus an `imports` "
        "entry for containerd, a drop-in for CRI-O (or an OCI hook), daemon.json for Docker. "
        "Comments and layout are kept, the original is backed up with a timestamp, and running "
        "it again changes nothing. Restart the engine afterwards.",
    )
    p.add_argument("--runtime", choices=ENGINES, required=True, help="the engine to configure")
    p.add_argument(
        "--config",
        help="engine config file (default /etc/containerd/config.toml, "
        "/etc/crio/crio.conf, /etc/docker/daemon.json)",
    )
    p.add_argument(
        "--drop-in-config",
        dest="drop_in",
        default=None,
        help="drop-in file (default /etc/containerd/conf.d/99-nvidia.toml, "
        '/etc/crio/crio.conf.d/99-nvidia.toml); "" edits --config in place',
    )
    p.add_argument(
        "--runtime-name",
        "--nvidia-runtime-name",
        dest="runtime_name",
        default="nvidia",
        help="name of the runtime entry / RuntimeClass handler (default nvidia)",
    )
    p.add_argument(
        "--runtime-path",
        "--nvidia-runtime-path",
        dest="runtime_path",
        default="/usr/bin/nvidia-container-runtime",
        help="absolute path of the GPU runtime (default /usr/bin/nvidia-container-runtime)",
    )
    p.add_argument(
        "--set-as-default",
        "--nvidia-set-as-default",
        dest="set_as_default",
        action="store_true",
        help="make it the engine's default runtime",
    )
    p.add_argument(
        "--enable-cdi",
        "--cdi.enabled",
        dest="enable_cdi",
        action="store_true",
        help="turn on native CDI (containerd enable_cdi, Docker features.cdi)",
    )
    p.add_argument(
        "--cdi-spec-dir",
        dest="cdi_spec_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="CDI spec directory for the engine (repeatable; default: the engine's own)",
    )
    p.add_argument(
        "--cdi-annotation-prefix",
        dest="cdi_annotation_prefixes",
        action="append",
        default=[],
        metavar="PREFIX",
        help="containerd: pass CRI annotations starting with PREFIX (e.g. nvidia.cdi.k8s.io/) "
        'into the OCI spec for this runtime (container_annotations = ["PREFIX*"]); '
        "needed for CDI annotations on containerd < 1.7 (repeatable)",
    )
    p.add_argument(
        "--config-mode",
        choices=("config-file", "oci-hook", "hook"),
        default="config-file",
        help="CRI-O: add a runtime (config-file) or install a JSON OCI prestart hook (oci-hook)",
    )
    p.add_argument(
        "--hook-path",
        "--nvidia-runtime-hook-path",
        dest="hook_path",
        default="/usr/bin/nvidia-container-runtime-hook",
        help="CRI-O oci-hook mode: the hook binary",
    )
    p.add_argument(
        "--oci-hook-path",
        default="/usr/share/containers/oci/hooks.d/oci-nvidia-hook.json",
        help="CRI-O oci-hook mode: where the hook JSON goes",
    )
    p.add_argument(
        "--low-level-runtime",
        choices=("runc", "runsc"),
        default="runc",
        help="containerd: runsc writes a gVisor shim entry (io.containerd.runsc.v1) with a runsc.toml "
        "whose binary_name is the GPU runtime and nvproxy on",
    )
    p.add_argument("--runsc-config", help="runsc.toml path (default: runsc.toml beside --config)")
    p.add_argument(
        "--engine-version",
        help="engine version to plan for (default: ask the engine binary); "
        "containerd >= 2.0 gets config version 3 and a minimal drop-in; Docker < 25 no CDI keys",
    )
    p.add_argument(
        "--cdi",
        choices=("auto", "off"),
        help="auto: ask the engine (version, CDI switch) and apply gpuctk's decision: native CDI where "
        "the engine has it, else the GPU runtime as default in cdi mode with nvidia.cdi.k8s.io/ "
        "annotations passed through (containerd < 1.7); off: the legacy path. Records the decision "
        "in --status-file",
    )
    p.add_argument(
        "--status-file",
        help="where --cdi records its decision (default /run/nvidia/validations/gpuctk-cdi-decision.json)",
    )
    p.add_argument(
        "--executable", help="engine binary asked for its version (default: containerd/dockerd/crio on PATH)"
    )
    p.add_argument(
        "--force-config-version",
        type=int,
        choices=(1, 2, 3, 4),
        help="containerd: edit a config whose `version` gpuctk does not know as this version",
    )
    p.add_argument("--dry-run", action="store_true", help="print a unified diff, change nothing")
    p.add_argument("--uninstall", action="store_true", help="remove what configure added")
    p.set_defaults(func=_configure)

    d = subparsers.add_parser(
        "detect",
        help="report the engine, its version, native-CDI support and GPU runtime",
        description="Report the container engine, its version, whether CDI is supported and enabled "
        "(from `containerd config dump` or the config file), the spec dirs, whether a GPU "
        "runtime is configured/default, and which injection path gpuctk recommends.",
    )
    d.add_argument("--runtime", choices=ENGINES, help="the engine (default: the first one found)")
    d.add_argument("--config", help="engine config file")
    d.add_argument("--executable", help="engine binary (default: found on PATH)")
    d.add_argument("--engine-version", help="use this version string instead of asking the binary")
    d.add_argument(
        "--no-dump", action="store_true", help="read the config file, never run `containerd config dump`"
    )
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=_detect)


def _parse_engine_version(text: str) -> Any:
    from gpuctk.engines.versions import parse_runtime_version, parse_version

    v = parse_runtime_version(text)[1] or parse_version(text)
    if v is None:
        raise UsageError(f"--engine-version: no version number in {text!r}")
    return v


def require_utf8_args(args: argparse.Namespace) -> None:
    """Command-line values end up inside UTF-8 files (TOML, JSON, units); a byte string that is not
    UTF-8 (Python keeps it as lone surrogates) cannot be written there: refuse it before any write."""
    for value in vars(args).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise UsageError(f"argument {item!r}: not valid UTF-8") from None


def _engine_version(args: argparse.Namespace) -> Any:
    """The engine's version: ``--engine-version``, else ``<binary> --version`` (None when the
    binary is not installed). A binary that fails or prints no version is an error naming
    the command: a guessed version could write keys the engine refuses."""
    if args.engine_version:
        return _parse_engine_version(args.engine_version)
    return engine_version_from_binary(args.runtime, getattr(args, "executable", None))


def engine_version_from_binary(engine: str, executable: str | None = None) -> Any:
    from gpuctk.engines.detect import BINARIES, _which, run_command
    from gpuctk.engines.versions import parse_runtime_version, parse_version

    if engine not in BINARIES:
        return None
    exe = executable or _which(BINARIES[engine])
    if not exe:
        return None
    rc, out = run_command([exe, "--version"])
    if rc != 0:
        first = (out.strip().splitlines() or [f"exit status {rc}"])[0]
        raise GpuctkError(f"{exe} --version: failed: {first[:200]}")
    line = (out.strip().splitlines() or [""])[0]
    version = parse_runtime_version(line)[1] or parse_version(line)
    if version is None:
        raise GpuctkError(f"{exe} --version: no version number in {line[:200]!r}; pass --engine-version")
    return version


def options_from_args(args: argparse.Namespace) -> Any:
    from gpuctk.engines.model import DEFAULT_CONFIG, DEFAULT_DROP_IN, ConfigureOptions

    require_utf8_args(args)
    engine = args.runtime
    if args.config == "":
        raise UsageError("--config: must not be empty")
    config = os.path.abspath(args.config or DEFAULT_CONFIG[engine])
    drop_in = DEFAULT_DROP_IN[engine] if args.drop_in is None else args.drop_in
    if engine == "docker" and drop_in:
        raise UsageError("--drop-in-config: docker has no drop-in files")
    if drop_in and not os.path.isabs(drop_in):
        raise UsageError(f"--drop-in-config: must be an absolute path, got {drop_in!r}")
    if engine != "docker" and not os.path.isabs(args.runtime_path):
        raise UsageError(f"--runtime-path: must be an absolute path for {engine}, got {args.runtime_path!r}")
    if args.low_level_runtime == "runsc" and engine != "containerd":
        raise UsageError("--low-level-runtime runsc: only for containerd")
    if not args.runtime_name or any(c in args.runtime_name for c in '"\\\n'):
        raise UsageError(f"--runtime-name: invalid name {args.runtime_name!r}")
    mode = "oci-hook" if args.config_mode in ("oci-hook", "hook") else "config-file"
    for flag, value in [("--cdi-spec-dir", d) for d in args.cdi_spec_dirs] + (
        [("--hook-path", args.hook_path)] if mode == "oci-hook" else []
    ):
        if not os.path.isabs(value):
            raise UsageError(f"{flag}: must be an absolute path, got {value!r}")
    return ConfigureOptions(
        engine=engine,
        config=config,
        drop_in=drop_in,
        runtime_name=args.runtime_name,
        runtime_path=args.runtime_path,
        set_as_default=args.set_as_default,
        enable_cdi=args.enable_cdi,
        cdi_spec_dirs=list(args.cdi_spec_dirs),
        container_annotations=[_annotation_glob(p) for p in args.cdi_annotation_prefixes],
        config_mode=mode,
        hook_path=args.hook_path,
        oci_hook_file=os.path.abspath(args.oci_hook_path),
        low_level_runtime="runsc" if args.low_level_runtime == "runsc" else "",
        runsc_config=os.path.abspath(args.runsc_config)
        if args.runsc_config
        else os.path.join(os.path.dirname(config), "runsc.toml"),
        engine_version=_engine_version(args),
        force_config_version=getattr(args, "force_config_version", None),
    )


def _annotation_glob(prefix: str) -> str:
    if not prefix or not prefix.endswith("/") or any(c in prefix for c in '*"\\ \n'):
        raise UsageError(
            f"--cdi-annotation-prefix: expected a prefix ending in '/', like "
            f"nvidia.cdi.k8s.io/, got {prefix!r}"
        )
    return prefix + "*"


def decide_for_node(
    engine: str,
    version: Any,
    config: str,
    *,
    wanted: bool = True,
    executable: str | None = None,
    dump: bool = True,
) -> Any:
    """The decision for this node's engine: its version (already asked) and the CDI switch
    of its effective config (``containerd config dump`` where the binary is there)."""
    from gpuctk.engines.decision import EngineFacts, decide
    from gpuctk.engines.detect import detect
    from gpuctk.engines.versions import format_version

    if version is None:
        raise GpuctkError(f"--cdi: cannot find the {engine} binary to ask its version; pass --engine-version")
    kwargs: dict[str, Any] = {"config": config, "version": format_version(version), "dump": dump}
    if executable:
        kwargs["executable"] = executable
    report = detect(engine, **kwargs)
    in_config = report.get("cdi_enabled_in_config")
    return decide(
        EngineFacts(
            engine,
            version,
            cdi_in_config=in_config if isinstance(in_config, bool) else None,
            cdi_wanted=wanted,
            engine_managed=True,
        )
    )


def apply_decision(opts: Any, d: Any) -> None:
    """Put a decision's engine edits into one ConfigureOptions (explicit flags stay)."""
    if d.path == "undecided":
        raise GpuctkError("--cdi: " + "; ".join(d.reasons))
    opts.set_as_default = opts.set_as_default or d.nvidia_default
    opts.enable_cdi = opts.enable_cdi or d.enable_cdi
    opts.container_annotations = opts.container_annotations + [
        a for a in d.container_annotations if a not in opts.container_annotations
    ]
    if opts.engine == "crio" and d.path == "legacy":
        opts.config_mode = "oci-hook"


def _configure(args: argparse.Namespace) -> int:
    from gpuctk.engines import apply, status
    from gpuctk.engines.decision import render
    from gpuctk.engines.versions import format_version

    opts = options_from_args(args)
    decision = None
    status_path = os.path.abspath(args.status_file) if args.status_file else status.DEFAULT_STATUS_FILE
    if args.cdi and not args.uninstall:
        decision = decide_for_node(
            opts.engine,
            opts.engine_version,
            opts.config,
            wanted=args.cdi == "auto",
            executable=args.executable,
            # a version given on the command line may not be the binary's: read the file then
            dump=not args.engine_version,
        )
        apply_decision(opts, decision)
    plan = apply.plan(opts, uninstall=args.uninstall)
    for w in plan.warnings:
        print(f"gpuctk: warning: {w}", file=sys.stderr)
    if decision is not None and args.dry_run:
        sys.stdout.write(render(decision))
    messages = apply.apply(plan, dry_run=args.dry_run)
    if args.dry_run:
        return 0
    if decision is not None:
        messages.append(
            status.write(
                status_path,
                status.render(
                    engine=opts.engine,
                    version=format_version(opts.engine_version),
                    decision=decision,
                    config=opts.config,
                    drop_in=opts.drop_in,
                    runtime_name=opts.runtime_name,
                ),
            )
        )
        if decision.path == "nvidia-runtime-cdi":
            messages.append(
                'set nvidia-container-runtime.mode = "cdi" and modes.cdi.annotation-prefixes = '
                '["nvidia.cdi.k8s.io/"] in the GPU runtime\'s config.toml (gpuctk install --cdi auto does it)'
            )
    elif args.uninstall and any(c.changed for c in plan.changes):
        try:
            record = status.read(status_path)
        except GpuctkError:
            record = None
        if (
            record
            and record.get("engine_config") == opts.config
            and record.get("runtime_name") == opts.runtime_name
        ):
            removed = status.remove(status_path)  # the decision it records is undone
            if removed:
                messages.append(removed)
    for m in messages:
        print(m)
    if any(c.changed for c in plan.changes):
        name = {"crio": "CRI-O", "docker": "dockerd"}.get(opts.engine, opts.engine)
        print(f"restart {name} to apply the change")
        if opts.low_level_runtime == "runsc" and not args.uninstall:
            print(
                'set [nvidia-container-runtime] runtimes = ["runsc"] (and mode = "legacy") in the GPU '
                "runtime's config.toml so it execs runsc (docs/gvisor.md)"
            )
    return 0


def _detect(args: argparse.Namespace) -> int:
    from gpuctk.engines.detect import detect, render_text

    kwargs: dict[str, Any] = {}
    if args.config == "":
        raise UsageError("--config: must not be empty")
    if args.config:
        kwargs["config"] = os.path.abspath(args.config)
    if args.executable:
        kwargs["executable"] = args.executable
    if args.engine_version:
        _parse_engine_version(args.engine_version)  # refuse a string without a version up front
        kwargs["version"] = args.engine_version
    if args.no_dump:
        kwargs["dump"] = False
    try:
        report = detect(args.runtime, **kwargs)
    except OSError as exc:
        raise GpuctkError(f"detect: {exc}") from None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_text(report))
    return 0
