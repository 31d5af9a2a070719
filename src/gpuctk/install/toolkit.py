"""`gpuctk install`: launchers, config.toml, engine config, CDI spec and refresh units.

What was installed is recorded in ``<toolkit-dir>/.gpuctk-install.json`` so that
``--uninstall`` removes exactly that (and undoes the engine configuration).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gpuctk.engines import apply as engine_apply
from gpuctk.engines.model import DEFAULT_CONFIG, DEFAULT_DROP_IN, ConfigureOptions
from gpuctk.engines.versions import Version
from gpuctk.errors import GpuctkError
from gpuctk.fileio import atomic_write
from gpuctk.install import launchers, units

MANIFEST = ".gpuctk-install.json"
SPEC_NAME = "nvidia.yaml"


def rooted(root: str, path: str) -> str:
    """``path`` (absolute, on the node) under the ``root`` prefix."""
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def unrooted(root: str, path: str) -> str:
    """The node path of ``path`` that lies under the ``root`` prefix (else ``path`` itself)."""
    path = os.path.abspath(path)
    if root in ("", "/"):
        return path
    rel = os.path.relpath(path, root)
    return path if rel == ".." or rel.startswith("../") else "/" + rel.removeprefix(".").lstrip("/")


@dataclass
class InstallOptions:
    toolkit_dir: str
    root: str = "/"
    bin_dir: str | None = None
    config_file: str | None = None
    runtime: str = "none"  # containerd | crio | docker | none
    engine_config: str | None = None
    drop_in: str | None = None
    runtime_name: str = "nvidia"
    set_as_default: bool = False
    enable_cdi: bool = False
    container_annotations: list[str] = field(default_factory=list)  # containerd: CRI annotation globs
    engine_version: Version | None = None
    runtime_mode: str | None = None
    annotation_prefixes: list[str] = field(default_factory=list)
    spec_dirs: list[str] = field(default_factory=list)
    cdi_dir: str | None = None
    generate_spec: bool = True
    driver_root: str = "/"
    dev_root: str | None = None
    inventory: str | None = None  # inventory JSON for generation (a simulated node), else discovered
    systemd_dir: str | None = None
    udev_dir: str | None = None
    units: bool = True

    def resolved(self) -> InstallOptions:
        r = self.root
        return replace(
            self,
            toolkit_dir=os.path.abspath(self.toolkit_dir),
            config_file=self.config_file or rooted(r, "/etc/nvidia-container-runtime/config.toml"),
            engine_config=(self.engine_config or rooted(r, DEFAULT_CONFIG[self.runtime]))
            if self.runtime != "none"
            else None,
            drop_in=(
                (rooted(r, DEFAULT_DROP_IN[self.runtime]) if DEFAULT_DROP_IN[self.runtime] else "")
                if self.drop_in is None
                else self.drop_in
            )
            if self.runtime != "none"
            else None,
            cdi_dir=self.cdi_dir or rooted(r, "/var/run/cdi"),
            systemd_dir=self.systemd_dir or rooted(r, "/etc/systemd/system"),
            udev_dir=self.udev_dir or rooted(r, "/etc/udev/rules.d"),
        )


def runtime_set(opts: InstallOptions) -> list[tuple[str, str]]:
    """The engine runtimes the installer registers (upstream's operator set, §6.4)."""
    tk = opts.toolkit_dir
    n = opts.runtime_name
    return [
        (n, os.path.join(tk, "nvidia-container-runtime")),
        (f"{n}-cdi", os.path.join(tk, "nvidia-container-runtime.cdi")),
        (f"{n}-legacy", os.path.join(tk, "nvidia-container-runtime.legacy")),
    ]


def engine_options(opts: InstallOptions) -> list[ConfigureOptions]:
    assert opts.engine_config is not None
    out = []
    for name, path in runtime_set(opts):
        out.append(
            ConfigureOptions(
                engine=opts.runtime,
                config=opts.engine_config,
                drop_in=opts.drop_in or "",
                runtime_name=name,
                runtime_path=path,
                set_as_default=opts.set_as_default and name == opts.runtime_name,
                enable_cdi=opts.enable_cdi,
                container_annotations=list(opts.container_annotations),
                engine_version=opts.engine_version,
                hook_path=os.path.join(opts.toolkit_dir, "nvidia-container-runtime-hook"),
            )
        )
    return out


# ------------------------------------------------------------------ config.toml
def render_toolkit_config(opts: InstallOptions, existing_path: str) -> str:
    """config.toml with the launcher paths (and the chosen mode) set; other keys kept."""
    from gpuctk import config as tkconfig

    if os.path.exists(existing_path):
        cfg, explicit = tkconfig.read_config(existing_path)
    else:
        cfg, explicit = tkconfig.default_config(), set()
    ours = {
        "nvidia-container-runtime-hook.path": os.path.join(opts.toolkit_dir, "nvidia-container-runtime-hook"),
        "nvidia-ctk.path": os.path.join(opts.toolkit_dir, "nvidia-ctk"),
    }
    if opts.runtime_mode:
        ours["nvidia-container-runtime.mode"] = opts.runtime_mode
    if opts.annotation_prefixes:
        ours["nvidia-container-runtime.modes.cdi.annotation-prefixes"] = list(opts.annotation_prefixes)  # type: ignore[assignment]
    if opts.spec_dirs:
        ours["nvidia-container-runtime.modes.cdi.spec-dirs"] = list(opts.spec_dirs)  # type: ignore[assignment]
    for key, value in ours.items():
        tkconfig.set_value(cfg, key, value)
    return tkconfig.render(cfg, set(explicit) | set(ours))


# ------------------------------------------------------------------ CDI spec
def generate_cdi_spec(opts: InstallOptions) -> tuple[str | None, list[str]]:
    """Generate the node's spec; returns (yaml/json text or None, warnings). Never raises for a
    discovered node (no driver, no GPU: the rest is installed anyway); an explicit ``inventory``
    the user named that cannot be used is bad input: GpuctkError."""
    from gpuctk.generate import GenerateOptions, generate_spec

    try:
        spec, warnings = generate_spec(
            GenerateOptions(
                driver_root=opts.driver_root,
                dev_root=opts.dev_root,
                inventory=opts.inventory,
                hook_path=os.path.join(opts.toolkit_dir, "nvidia-cdi-hook"),
            )
        )
    except Exception as exc:  # no driver, no GPU: install the rest anyway
        if opts.inventory:
            raise GpuctkError(f"--inventory: {exc}") from None
        return None, [f"CDI spec not generated: {exc}"]
    import yaml

    return yaml.safe_dump(spec, sort_keys=False), list(warnings)


# ------------------------------------------------------------------ install / uninstall
def _write_if_changed(path: str, text: str, mode: int = 0o644) -> str:
    try:
        with open(path) as f:
            if f.read() == text:
                return f"{path}: unchanged"
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        pass  # unreadable or not text: replaced below (a directory fails there, with its name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, text, mode)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write: {_reason(exc)}") from None
    return f"{path}: written"


def _reason(exc: OSError) -> str:
    return "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)


def _check_targets(paths: list[str]) -> None:
    """Before the first write: every file gpuctk will write must be a file (or absent) under a
    directory (or a path it can create), so a wrong --systemd-dir does not leave half an install."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            raise GpuctkError(f"{path}: cannot write: is a directory")
        parent = os.path.dirname(path)
        while parent and not os.path.lexists(parent):
            parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
        if parent and not os.path.isdir(parent):
            raise GpuctkError(f"{path}: cannot write: {parent} is not a directory")


def install(opts: InstallOptions, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Install everything; returns (messages, warnings)."""
    opts = opts.resolved()
    msgs: list[str] = []
    warns: list[str] = []
    manifest_path = os.path.join(opts.toolkit_dir, MANIFEST)
    previous = _read_manifest(manifest_path)
    files: list[str] = list(previous.get("files", []))

    lcs = launchers.plan_launchers(opts.toolkit_dir, opts.bin_dir)
    missing = launchers.missing_scripts(lcs)
    if missing:
        warns.append("console scripts not found (launchers will dangle): " + ", ".join(missing))

    # plan every engine edit first: malformed engine configs stop us before any write
    if opts.runtime != "none":
        for eo in engine_options(opts):
            engine_apply.plan(eo)
    config_text = render_toolkit_config(opts, str(opts.config_file))
    # a named inventory is checked (and the spec built) before any write, so a bad one installs nothing
    early_spec = generate_cdi_spec(opts) if opts.generate_spec and opts.inventory else None

    for lc in lcs:  # foreign files first: install_launcher refuses them too, but only half-way through
        if (
            os.path.lexists(lc.path)
            and not (os.path.islink(lc.path) and os.readlink(lc.path) == lc.target)
            and not launchers.is_ours(lc.path)
        ):
            raise GpuctkError(f"{lc.path}: exists and is not a gpuctk launcher; remove it first")
    _check_targets(
        [lc.path for lc in lcs]
        + [str(opts.config_file), manifest_path]
        + ([os.path.join(str(opts.cdi_dir), SPEC_NAME)] if opts.generate_spec else [])
        + (
            [
                os.path.join(str(opts.systemd_dir), units.SERVICE),
                os.path.join(str(opts.udev_dir), units.UDEV_RULE),
            ]
            if opts.units
            else []
        )
    )

    if dry_run:
        msgs += [
            f"would create launcher {lc.path} -> {lc.target if lc.kind == 'symlink' else '(sh wrapper)'}"
            for lc in lcs
        ]
        msgs.append(f"would write {opts.config_file}")
        if opts.runtime != "none":  # the main runtime's engine diff (the -cdi/-legacy ones are alike)
            engine_apply.apply(engine_apply.plan(engine_options(opts)[0]), dry_run=True)
        return msgs, warns

    try:
        os.makedirs(opts.toolkit_dir, exist_ok=True)
    except OSError as exc:
        raise GpuctkError(f"--toolkit-dir {opts.toolkit_dir}: cannot create: {_reason(exc)}") from None
    for lc in lcs:
        changed = launchers.install_launcher(lc)
        msgs.append(f"{lc.path}: {'installed' if changed else 'unchanged'}")
        if lc.path not in files:
            files.append(lc.path)
    warns += launchers.compile_bytecode()

    config_file = str(opts.config_file)
    config_created = previous.get("config_created", not os.path.exists(config_file))
    msgs.append(_write_if_changed(config_file, config_text))

    for eo in engine_options(opts) if opts.runtime != "none" else []:
        plan = engine_apply.plan(eo)
        warns += plan.warnings
        msgs += engine_apply.apply(plan)

    if opts.generate_spec:
        spec_text, spec_warns = early_spec or generate_cdi_spec(opts)
        warns += spec_warns
        if spec_text is not None:
            spec_path = os.path.join(str(opts.cdi_dir), SPEC_NAME)
            msgs.append(_write_if_changed(spec_path, spec_text))
            if spec_path not in files:
                files.append(spec_path)

    if opts.units:
        # the units run on the node itself: paths without the --root prefix
        spec_path = os.path.join(unrooted(opts.root, str(opts.cdi_dir)), SPEC_NAME)
        generate_args = tuple(
            f"--{flag}={os.path.abspath(value)}"
            for flag, value in (
                ("driver-root", opts.driver_root if opts.driver_root not in ("", "/") else None),
                ("dev-root", opts.dev_root),
            )
            if value
        )
        for path, text in (
            (
                os.path.join(str(opts.systemd_dir), units.SERVICE),
                units.service_unit(opts.toolkit_dir, spec_path, generate_args),
            ),
            (os.path.join(str(opts.systemd_dir), units.PATH_UNIT), units.path_unit(opts.toolkit_dir)),
            (os.path.join(str(opts.udev_dir), units.UDEV_RULE), units.udev_rule()),
        ):
            msgs.append(_write_if_changed(path, text))
            if path not in files:
                files.append(path)
        msgs.append(
            f"enable with: systemctl daemon-reload && systemctl enable --now {units.PATH_UNIT} "
            f"{units.SERVICE} && udevadm control --reload"
        )

    manifest = {
        "toolkit_dir": opts.toolkit_dir,
        "files": files,
        "config_file": config_file,
        "config_created": config_created,
        "engine": _recorded_engines(
            previous.get("engine", []), engine_options(opts) if opts.runtime != "none" else []
        ),
    }
    _write_if_changed(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return msgs, warns


def _recorded_engines(previous: list[Any], current: list[ConfigureOptions]) -> list[Any]:
    """Engine configurations to undo on uninstall: this run's plus earlier runs' other engines
    or files (an install for containerd, then one for docker, leaves both to undo)."""

    def key(e: Any) -> tuple[Any, ...]:
        return (e.get("engine"), e.get("config"), e.get("runtime_name")) if isinstance(e, dict) else ()

    new = [asdict(eo) for eo in current]
    keys = {key(e) for e in new}
    return [e for e in previous if key(e) not in keys] + new


def _read_manifest(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except NotADirectoryError:
        raise GpuctkError(f"--toolkit-dir {os.path.dirname(path)}: not a directory") from None
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GpuctkError(f"{path}: unreadable install manifest: {reason}") from None
    if not isinstance(data, dict):
        raise GpuctkError(f"{path}: unreadable install manifest: the top level must be a JSON object")
    files = data.get("files", [])
    if not (isinstance(files, list) and all(isinstance(f, str) and os.path.isabs(f) for f in files)):
        raise GpuctkError(f"{path}: field files: must be an array of absolute paths")
    if not isinstance(data.get("engine", []), list):
        raise GpuctkError(f"{path}: field engine: must be an array")
    return data


def _configure_options(recorded: Any, source: str) -> ConfigureOptions:
    data: dict[str, Any] = dict(recorded) if isinstance(recorded, dict) else {}
    if isinstance(data.get("engine_version"), list):
        data["engine_version"] = tuple(data["engine_version"])
    try:
        return ConfigureOptions(**data)
    except TypeError:
        raise GpuctkError(
            f"{source}: field engine: not a recorded engine configuration: {recorded!r}"
        ) from None


def uninstall(opts: InstallOptions, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove what :func:`install` recorded; ``dry_run`` only says what would go."""
    opts = opts.resolved()
    msgs: list[str] = []
    warns: list[str] = []
    manifest_path = os.path.join(opts.toolkit_dir, MANIFEST)
    manifest = _read_manifest(manifest_path)
    if not manifest:
        warns.append(f"{manifest_path} not found: removing what the given options describe")
    engine = [_configure_options(e, manifest_path) for e in manifest.get("engine", [])]
    if not engine and opts.runtime != "none":
        engine = engine_options(opts)
    for eo in engine:  # one runtime at a time: each plan reads what the previous one wrote
        plan = engine_apply.plan(eo, uninstall=True)
        warns += plan.warnings
        msgs += engine_apply.apply(plan, dry_run=dry_run)

    files = manifest.get("files") or [
        lc.path for lc in launchers.plan_launchers(opts.toolkit_dir, opts.bin_dir)
    ]
    for path in files:
        is_launcher = (
            os.path.basename(path) in launchers.SYMLINKS or os.path.basename(path) in launchers.WRAPPERS
        )
        if is_launcher and os.path.lexists(path) and not launchers.is_ours(path):
            warns.append(f"{path}: not a gpuctk launcher, left in place")
            continue
        if dry_run:
            if os.path.lexists(path):
                msgs.append(f"would remove {path}")
            continue
        try:
            os.unlink(path)
            msgs.append(f"{path}: removed")
        except FileNotFoundError:
            pass
    config_file = manifest.get("config_file") or opts.config_file
    if manifest.get("config_created") and isinstance(config_file, str) and os.path.isfile(config_file):
        if dry_run:
            msgs.append(f"would remove {config_file}")
        else:
            os.unlink(config_file)
            msgs.append(f"{config_file}: removed")
    elif isinstance(config_file, str) and os.path.exists(config_file):
        warns.append(f"{config_file} existed before gpuctk install: left in place")
    if dry_run:
        return msgs, warns
    try:
        os.unlink(manifest_path)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(opts.toolkit_dir)
    except OSError:
        pass
    return msgs, warns
