"""`gpuctk cdi generate` and `gpuctk cdi transform root`."""

from __future__ import annotations

import argparse
import os
import sys


def _env_list(name: str) -> list[str]:
    v = os.environ.get(name, "")
    return [x.strip() for x in v.split(",") if x.strip()]


def _default_hook_path(notes: list[str]) -> str:
    """The hook upstream's generator would name (config.toml, then the installed launcher);
    ``notes`` gets which was chosen (a warning when it is only this environment's gpuctk-hook)."""
    from gpuctk.config import load_config
    from gpuctk.errors import GpuctkError
    from gpuctk.generate.hooks import choose_hook_path

    configured = None
    try:
        configured = str(load_config()["nvidia-ctk"]["path"] or "")
    except GpuctkError as exc:
        notes.append(f"warning: hook path: config.toml not used: {exc}")
    path, why, fallback = choose_hook_path(configured)
    notes.append(f"{'warning' if fallback else 'info'}: hook path {path} ({why})")
    return path


def _generate(args: argparse.Namespace) -> int:
    from gpuctk.generate import GenerateOptions, generate_spec
    from gpuctk.generate.render import format_for_path, render, write_spec_file

    notes: list[str] = []  # printed once the spec is generated (a failure stays one line)
    hook_path = args.hook_path or os.environ.get("NVIDIA_CTK_CDI_HOOK_PATH")
    if not hook_path:
        hook_path = _default_hook_path(notes)
    if args.simulated_devices:
        from gpuctk.sim.devstat import use_descriptor_devices

        use_descriptor_devices()
    opts = GenerateOptions(
        mode=args.mode,
        driver_root=args.driver_root or os.environ.get("NVIDIA_CTK_DRIVER_ROOT") or "/",
        dev_root=args.dev_root or os.environ.get("NVIDIA_CTK_DEV_ROOT"),
        device_name_strategies=args.device_name_strategy
        or _env_list("NVIDIA_CTK_CDI_GENERATE_DEVICE_NAME_STRATEGIES")
        or ["index", "uuid"],
        device_ids=args.device_id or _env_list("NVIDIA_CTK_CDI_GENERATE_DEVICE_IDS") or ["all"],
        vendor=args.vendor,
        device_class=args.device_class,
        hook_path=hook_path,
        ldconfig_path=args.ldconfig_path,
        disabled_hooks=args.disable_hook or [],
        enabled_hooks=args.enable_hook or [],
        feature_flags=args.feature_flag or _env_list("NVIDIA_CTK_CDI_GENERATE_FEATURE_FLAGS"),
        no_all_device=args.no_all_device,
        csv_files=args.csv_file or _env_list("NVIDIA_CTK_CDI_GENERATE_CSV_FILES"),
        csv_ignore_patterns=args.csv_ignore_pattern or [],
        inventory=args.inventory,
        library_search_paths=args.library_search_path or [],
    )
    spec, warnings = generate_spec(opts)
    if args.sandbox == "gvisor":
        from gpuctk.sandbox.gvisor import runsc_ready_cdi_spec

        spec, more = runsc_ready_cdi_spec(spec)
        warnings += more
    output = args.output or os.environ.get("NVIDIA_CTK_CDI_OUTPUT_FILE_PATH") or ""
    path, fmt, warning = format_for_path(output, args.format) if output else ("", args.format or "yaml", None)
    if not args.quiet:
        for note in notes:
            print(f"gpuctk: {note}", file=sys.stderr)
        for w in [*warnings, *([warning] if warning else [])]:
            print(f"gpuctk: warning: {w}", file=sys.stderr)
    if not output:
        sys.stdout.write(render(spec, fmt))
        return 0
    from gpuctk.filelock import FileLock, remove_stale_temps

    with FileLock(path):  # one writer at a time; temp files of a killed run are removed
        remove_stale_temps(path)
        write_spec_file(spec, path, fmt)
    if not args.quiet:
        print(f"wrote {path} (CDI {spec['cdiVersion']}, {len(spec['devices'])} devices)", file=sys.stderr)
    return 0


def _transform_root(args: argparse.Namespace) -> int:
    from gpuctk.cdi.model import MAX_SPEC_SIZE, canonical_or_raise, parse_document, read_spec_bytes
    from gpuctk.errors import GpuctkError
    from gpuctk.generate.render import format_for_path, render, write_spec_file
    from gpuctk.generate.transform import transform_root

    source = args.input or "-"
    # one spec loader: the CDI library's reader (regular files only, size cap) and parser
    # (strict decoding, alias guard, go-yaml scalars); an invalid spec is refused
    if source == "-":
        try:
            data = sys.stdin.buffer.read(MAX_SPEC_SIZE + 1)
        except OSError as exc:
            raise GpuctkError(f"<stdin>: cannot read spec: {exc.strerror or exc}") from None
        if len(data) > MAX_SPEC_SIZE:
            raise GpuctkError(f"<stdin>: spec is more than the {MAX_SPEC_SIZE >> 20} MiB limit")
        doc = parse_document(data, "<stdin>")
    else:
        data = read_spec_bytes(source)
        doc = parse_document(data, source, "json" if source.endswith(".json") else "yaml")
    spec = canonical_or_raise(doc, "<stdin>" if source == "-" else source, validate=True)
    out = transform_root(spec, args.from_root, args.to_root, args.relative_to)
    if not args.output:
        fmt = args.format or ("json" if source.endswith(".json") else "yaml")
        sys.stdout.write(render(out, fmt))
        return 0
    path, fmt, _ = format_for_path(args.output, args.format)
    write_spec_file(out, path, fmt)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from gpuctk.generate.constants import FEATURE_FLAGS, HOOK_NAMES, MODES, NAME_STRATEGIES

    p = subparsers.add_parser(
        "generate",
        help="generate the CDI spec of this (or a simulated) node",
        description="Discover the NVIDIA driver, devices and libraries under --driver-root/--dev-root and "
        "write a CDI spec (YAML by default) to --output or stdout.",
    )
    p.add_argument(
        "--mode",
        "--discovery-mode",
        default=os.environ.get("NVIDIA_CTK_CDI_GENERATE_MODE", "auto"),
        choices=MODES,
    )
    p.add_argument("--driver-root", default=None, help="root of the driver files (default /)")
    p.add_argument(
        "--dev-root", default=None, help="root holding /dev, /proc, /sys (default: the driver root)"
    )
    p.add_argument(
        "--device-name-strategy",
        action="append",
        choices=NAME_STRATEGIES,
        help="repeatable; default index and uuid",
    )
    p.add_argument("--device-id", "--device", action="append", help="repeatable; default all")
    # upstream's CLI defaults (cmd/nvidia-ctk/cdi/generate/generate.go): nvidia.com/gpu in every
    # mode, management included; the library's per-mode defaults (pkg/nvcdi) are for callers
    p.add_argument(
        "--vendor",
        "--cdi-vendor",
        dest="vendor",
        default=os.environ.get("NVIDIA_CTK_CDI_GENERATE_VENDOR") or "nvidia.com",
        help="vendor of the spec's kind (default nvidia.com, in every mode)",
    )
    p.add_argument(
        "--class",
        "--cdi-class",
        dest="device_class",
        default=os.environ.get("NVIDIA_CTK_CDI_GENERATE_CLASS") or "gpu",
        help="class of the spec's kind (default gpu, in every mode)",
    )
    p.add_argument(
        "--hook-path",
        "--nvidia-cdi-hook-path",
        "--nvidia-ctk-path",
        dest="hook_path",
        default=None,
        help="hook executable named in the spec (default, as upstream: [nvidia-ctk] path in config.toml, "
        "else the installed nvidia-cdi-hook; gpuctk-hook of this environment only when neither exists)",
    )
    p.add_argument("--ldconfig-path", default=None)
    p.add_argument("--disable-hook", "--disable-hooks", action="append", choices=[*HOOK_NAMES, "all"])
    p.add_argument("--enable-hook", "--enable-hooks", action="append", choices=list(HOOK_NAMES))
    p.add_argument("--feature-flag", "--feature-flags", action="append", choices=FEATURE_FLAGS)
    p.add_argument("--no-all-device", action="store_true", help="do not add the merged 'all' device")
    p.add_argument("--format", choices=("json", "yaml"), default=None)
    p.add_argument("--output", "-o", default=None, help="file to write (default stdout)")
    p.add_argument(
        "--csv.file", dest="csv_file", action="append", help="CSV mount spec (csv mode; repeatable)"
    )
    p.add_argument(
        "--csv.ignore-pattern",
        dest="csv_ignore_pattern",
        action="append",
        help="glob of sym entries to drop (csv mode; repeatable)",
    )
    p.add_argument("--library-search-path", action="append", help="extra library directory (host path)")
    p.add_argument(
        "--inventory",
        default=None,
        help="GPU inventory JSON (fixture backend; default $GPUCTK_INVENTORY, NVML, then procfs)",
    )
    p.add_argument("--sandbox", choices=("gvisor",), default=None, help="make the spec runsc-ready")
    p.add_argument(
        "--simulated-devices",
        action="store_true",
        help="also take the device descriptor files of a `gpuctk sim create --no-mknod` node as "
        "device nodes (testing only; by default only real character devices count)",
    )
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_generate)

    t = subparsers.add_parser("transform", help="transform CDI specs (root)")
    tsub = t.add_subparsers(dest="transform", metavar="TRANSFORM")
    r = tsub.add_parser("root", help="rewrite a root prefix in a spec's paths")
    r.add_argument("--from", dest="from_root", required=True)
    r.add_argument("--to", dest="to_root", required=True)
    r.add_argument("--relative-to", choices=("host", "container"), default="host")
    r.add_argument("--input", default="-", help="spec file or - for stdin")
    r.add_argument("--output", default=None)
    r.add_argument("--format", choices=("json", "yaml"), default=None)
    r.set_defaults(func=_transform_root)
    t.set_defaults(func=lambda a: (t.print_help(sys.stderr), 2)[1])
