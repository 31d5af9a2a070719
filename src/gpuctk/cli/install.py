"""`gpuctk install`: launchers, toolkit config, engine config, CDI spec and refresh units."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gpuctk.errors import GpuctkError, UsageError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "install",
        help="install gpuctk's launchers, config, engine config and CDI spec",
        description="Install launchers for gpuctk's executables (under gpuctk and upstream names: "
        "nvidia-container-runtime[.cdi|.legacy], nvidia-container-runtime-hook, nvidia-cdi-hook, "
        "nvidia-ctk) into --toolkit-dir, write config.toml, register the runtimes with the engine, "
        "generate the node's CDI spec, and write systemd/udev units that refresh it. "
        "--uninstall removes all of it.",
    )
    p.add_argument(
        "--toolkit-dir", required=True, help="directory for the launchers (e.g. /usr/local/nvidia/toolkit)"
    )
    p.add_argument("--root", default="/", help="prefix for every system path (tests, image builds)")
    p.add_argument("--bin-dir", help="where gpuctk's console scripts are (default: beside this Python)")
    p.add_argument(
        "--config-file", help="toolkit config.toml (default <root>/etc/nvidia-container-runtime/config.toml)"
    )
    p.add_argument(
        "--runtime",
        choices=("containerd", "crio", "docker", "none"),
        default="none",
        help="engine to configure (default none)",
    )
    p.add_argument("--engine-config", help="engine config file (default: the engine's, under --root)")
    p.add_argument(
        "--drop-in-config", dest="drop_in", default=None, help='engine drop-in file ("" = in place)'
    )
    p.add_argument(
        "--runtime-name", default="nvidia", help="runtime name; also adds <name>-cdi and <name>-legacy"
    )
    p.add_argument("--set-as-default", action="store_true", help="make <name> the engine's default runtime")
    p.add_argument("--enable-cdi", action="store_true", help="turn on native CDI in the engine")
    p.add_argument(
        "--cdi",
        choices=("auto", "off"),
        help="auto: ask the engine and apply gpuctk's native-CDI decision to the engine config and "
        "config.toml (native CDI where the engine has it; containerd < 1.7: nvidia as the default "
        "runtime in cdi mode with nvidia.cdi.k8s.io/ annotations); off: the legacy path. The "
        "decision is recorded in --status-file",
    )
    p.add_argument(
        "--status-file",
        help="decision record (default <root>/run/nvidia/validations/gpuctk-cdi-decision.json)",
    )
    p.add_argument("--engine-version", help="engine version to plan for (default: ask the engine)")
    p.add_argument(
        "--runtime-mode",
        choices=("auto", "legacy", "cdi", "jit-cdi", "csv"),
        help="nvidia-container-runtime.mode in config.toml",
    )
    p.add_argument(
        "--annotation-prefix",
        dest="annotation_prefixes",
        action="append",
        default=[],
        help="modes.cdi.annotation-prefixes in config.toml (repeatable)",
    )
    p.add_argument(
        "--cdi-spec-dir",
        dest="spec_dirs",
        action="append",
        default=[],
        help="modes.cdi.spec-dirs in config.toml (repeatable)",
    )
    p.add_argument("--cdi-dir", help="where the node's CDI spec goes (default <root>/var/run/cdi)")
    p.add_argument(
        "--no-cdi-spec", dest="generate_spec", action="store_false", help="do not generate the CDI spec"
    )
    p.add_argument("--driver-root", default="/", help="driver root for CDI generation")
    p.add_argument("--dev-root", help="device root for CDI generation")
    p.add_argument("--inventory", help="inventory JSON for CDI generation (e.g. a simulated node's)")
    p.add_argument("--systemd-dir", help="default <root>/etc/systemd/system")
    p.add_argument("--udev-dir", help="default <root>/etc/udev/rules.d")
    p.add_argument("--no-units", dest="units", action="store_false", help="no systemd/udev refresh units")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be installed (or removed, with --uninstall), change nothing",
    )
    p.add_argument("--uninstall", action="store_true", help="remove everything a previous install wrote")
    p.set_defaults(func=_install)


def _install(args: argparse.Namespace) -> int:
    from gpuctk.cli.runtime_cmd import _engine_version, require_utf8_args
    from gpuctk.install.toolkit import InstallOptions, install, uninstall

    if not args.toolkit_dir:
        raise UsageError("--toolkit-dir: must not be empty")
    require_utf8_args(args)
    if args.runtime == "none" and (args.set_as_default or args.enable_cdi or args.cdi):
        raise UsageError("--set-as-default/--enable-cdi/--cdi need --runtime containerd|crio|docker")
    for prefix in args.annotation_prefixes or ():
        if not prefix or any(c.isspace() for c in prefix):
            raise UsageError(f"--annotation-prefix: invalid prefix {prefix!r} (like nvidia.cdi.k8s.io/)")
    for spec_dir in args.spec_dirs or ():
        if not os.path.isabs(spec_dir):
            raise UsageError(f"--cdi-spec-dir: must be an absolute path, got {spec_dir!r}")
    if args.inventory and not args.uninstall and not os.path.isfile(args.inventory):
        raise GpuctkError(f"--inventory: {args.inventory}: no such file")
    ev_args = argparse.Namespace(engine_version=args.engine_version, runtime=args.runtime)
    opts = InstallOptions(
        toolkit_dir=args.toolkit_dir,
        root=args.root,
        bin_dir=args.bin_dir,
        config_file=args.config_file,
        runtime=args.runtime,
        engine_config=args.engine_config,
        drop_in=args.drop_in,
        runtime_name=args.runtime_name,
        set_as_default=args.set_as_default,
        enable_cdi=args.enable_cdi,
        engine_version=_engine_version(ev_args) if args.runtime != "none" else None,
        runtime_mode=args.runtime_mode,
        annotation_prefixes=args.annotation_prefixes,
        spec_dirs=args.spec_dirs,
        cdi_dir=args.cdi_dir,
        generate_spec=args.generate_spec,
        driver_root=args.driver_root,
        dev_root=args.dev_root,
        inventory=args.inventory,
        systemd_dir=args.systemd_dir,
        udev_dir=args.udev_dir,
        units=args.units,
    )
    decision = _apply_cdi_decision(args, opts) if args.cdi and not args.uninstall else None
    if args.uninstall:
        msgs, warns = uninstall(opts, dry_run=args.dry_run)
    else:
        msgs, warns = install(opts, dry_run=args.dry_run)
    if args.cdi or args.uninstall:
        msgs += _record_decision(args, opts, decision)
    for w in warns:
        print(f"gpuctk: warning: {w}", file=sys.stderr)
    for m in msgs:
        print(m)
    return 0


def _apply_cdi_decision(args: argparse.Namespace, opts: Any) -> Any:
    """``--cdi``: decide for this node's engine (gpuctk.engines.decision) and fold the decision
    into the install options: engine edits and the GPU runtime's mode/annotation prefixes."""
    from gpuctk.cli.runtime_cmd import decide_for_node
    from gpuctk.engines.decision import NVIDIA_RUNTIME_CDI, render

    d = decide_for_node(
        opts.runtime,
        opts.engine_version,
        opts.resolved().engine_config,
        wanted=args.cdi == "auto",
        dump=not args.engine_version,
    )
    if d.path == "undecided":
        raise GpuctkError("--cdi: " + "; ".join(d.reasons))
    opts.set_as_default = opts.set_as_default or d.nvidia_default
    opts.enable_cdi = opts.enable_cdi or d.enable_cdi
    opts.container_annotations = list(d.container_annotations)
    if d.path == NVIDIA_RUNTIME_CDI:
        opts.runtime_mode = opts.runtime_mode or d.shim_mode
        opts.annotation_prefixes = opts.annotation_prefixes or list(d.annotation_prefixes)
    if args.dry_run:
        sys.stdout.write(render(d))
    return d


def _record_decision(args: argparse.Namespace, opts: Any, d: Any) -> list[str]:
    from gpuctk.engines import status
    from gpuctk.engines.versions import format_version

    path = args.status_file or status.status_file(args.root)
    if args.dry_run:
        return [f"would record the decision in {path}"] if d is not None else []
    r = opts.resolved()
    if args.uninstall:
        try:
            record = status.read(path)
        except GpuctkError:
            record = None
        if not record or record.get("toolkit_config") != str(r.config_file):
            return []  # no record, or one another install wrote
        removed = status.remove(path)
        return [removed] if removed else []
    if d is None:
        return []
    text = status.render(
        engine=r.runtime,
        version=format_version(r.engine_version),
        decision=d,
        config=str(r.engine_config),
        drop_in=r.drop_in or "",
        runtime_name=r.runtime_name,
        toolkit_config=str(r.config_file),
    )
    return [status.write(path, text)]
