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
from gpuctk.engines.model import DEFAULT_CONFIG, DEFAULT_DROP_IN, GENERATED_HEADER, ConfigureOptions
from gpuctk.engines.versions import Version
from gpuctk.errors import GpuctkError
from gpuctk.fileio import atomic_write, copy_atomic, decode_json, read_regular
from gpuctk.filelock import FileLock, remove_stale_temps
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
    """The engine runtimes the installer registers (upstream's set: NVIDIA/nvidia-container-toolkit
    ``cmd/nvidia-ctk-installer/container/runtime/runtime.go``)."""
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
        from gpuctk.engines import tomlsync
        from gpuctk.fileio import decode_utf8

        try:  # type, size and shape first: a FIFO or a hostile file must not hang or crash install
            raw = read_regular(existing_path, 4 << 20)
        except OSError as exc:
            raise GpuctkError(f"{existing_path}: cannot read: {_reason(exc)}") from None
        tomlsync.parse_plain(decode_utf8(raw, existing_path, "config.toml"), existing_path)
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
    if os.path.exists(existing_path):
        return _edit_keeping_comments(existing_path, ours)
    return tkconfig.render(cfg, set(explicit) | set(ours))


def _edit_keeping_comments(path: str, ours: dict[str, Any]) -> str:
    """An existing config.toml with only ``ours`` changed: every other line and comment kept
    (``read_config`` above has already validated the file)."""
    from gpuctk.engines import tomlsync
    from gpuctk.engines.dicts import set_in
    from gpuctk.fileio import decode_utf8

    try:
        text = decode_utf8(read_regular(path), path)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot read: {_reason(exc)}") from None
    doc = tomlsync.parse_doc(text, path)
    wanted = doc.unwrap()
    for key, value in ours.items():
        set_in(wanted, tuple(key.split(".")), value)
    tomlsync.sync(doc, wanted)
    return str(doc.as_string())


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
def digest(data: bytes | str) -> str:
    import hashlib

    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _current(path: str) -> str | None:
    """What is at ``path`` now, as recorded in the manifest: ``link:TARGET`` for a symlink, the
    sha256 of a regular file's bytes, ``other`` for anything else, None when nothing is there."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    import stat

    if stat.S_ISLNK(st.st_mode):
        return "link:" + os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return "other"
    try:
        return digest(read_regular(path))
    except OSError:
        return "other"


def _write_if_changed(path: str, text: str, mode: int = 0o644) -> str:
    try:
        if read_regular(path) == text.encode():
            return f"{path}: unchanged"
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        pass  # unreadable or not a file: replaced below (a directory fails there, with its name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, text, mode)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write: {_reason(exc)}") from None
    return f"{path}: written"


def _reason(exc: OSError) -> str:
    return "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)


def _clean_scratch(paths: list[str]) -> None:
    """Temp files a killed run left beside ``paths`` (atomic_write's, a launcher's symlink swap)."""
    for path in paths:
        remove_stale_temps(path)
        tmp = f"{path}.gpuctk-tmp"
        if os.path.islink(tmp):
            os.unlink(tmp)


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


def _stamp() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _backup_name(path: str) -> str:
    base = candidate = f"{path}{engine_apply.BACKUP_INFIX}{_stamp()}"
    n = 1
    while os.path.lexists(candidate):
        candidate, n = f"{base}.{n}", n + 1
    return candidate


def _plan_backup(path: str, previous: dict[str, Any], backups: dict[str, str]) -> None:
    """A file install is about to overwrite that install did not write (a user's config.toml, a
    user's own file at the drop-in path) gets a backup, restored on uninstall. Only the name is
    chosen here: the manifest records it before the copy is made."""
    if path in backups and os.path.lexists(backups[path]):
        return
    now = _current(path)
    if now is None or now == "other" or now.startswith("link:"):
        return
    if previous.get("written", {}).get(path) == now:  # install's own output from an earlier run
        return
    backups[path] = _backup_name(path)


def _make_backups(backups: dict[str, str]) -> None:
    for path, backup in backups.items():
        if not os.path.lexists(backup) and os.path.isfile(path):
            try:
                copy_atomic(path, backup)
            except OSError as exc:
                raise GpuctkError(f"{backup}: cannot back up {path}: {_reason(exc)}") from None


def _write_manifest(path: str, manifest: dict[str, Any]) -> None:
    try:
        atomic_write(path, json.dumps(manifest, indent=2) + "\n", 0o644)
    except OSError as exc:
        raise GpuctkError(f"{path}: cannot write: {_reason(exc)}") from None


def _missing_dirs(path: str) -> list[str]:
    """The directories above ``path`` that do not exist yet (install creates them)."""
    out = []
    d = os.path.dirname(os.path.abspath(path))
    while d != "/" and not os.path.lexists(d):
        out.append(d)
        d = os.path.dirname(d)
    return out


def managed_roots(opts: InstallOptions) -> list[str]:
    """The directories (and files) install writes into: uninstall removes nothing elsewhere."""
    roots = [opts.toolkit_dir, str(opts.config_file), str(opts.cdi_dir)]
    if opts.units:
        roots += [str(opts.systemd_dir), str(opts.udev_dir)]
    return [os.path.abspath(r) for r in roots]


def _under(path: str, roots: list[str]) -> bool:
    path = os.path.abspath(path)
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def install(opts: InstallOptions, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Install everything; returns (messages, warnings).

    Crash-safe: the manifest, listing every file with the digest of what install will write
    there and the backups it will make, is written before the first of them, under a lock
    beside it; every file is then written atomically. A killed install leaves only files the
    manifest names, so a re-install or ``--uninstall`` finds all of them."""
    opts = opts.resolved()
    msgs: list[str] = []
    warns: list[str] = []
    manifest_path = os.path.join(opts.toolkit_dir, MANIFEST)
    _read_manifest(manifest_path)  # a broken manifest stops us before anything else

    lcs = launchers.plan_launchers(opts.toolkit_dir, opts.bin_dir)
    missing = launchers.missing_scripts(lcs)
    if missing:
        warns.append("console scripts not found (launchers will dangle): " + ", ".join(missing))

    # plan every engine edit first: malformed engine configs stop us before any write
    if opts.runtime != "none":
        engine_apply.plan_all(engine_options(opts))
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
    spec_path = os.path.join(str(opts.cdi_dir), SPEC_NAME)
    unit_paths = (
        [
            os.path.join(str(opts.systemd_dir), units.SERVICE),
            os.path.join(str(opts.systemd_dir), units.PATH_UNIT),
            os.path.join(str(opts.udev_dir), units.UDEV_RULE),
        ]
        if opts.units
        else []
    )
    _check_targets(
        [lc.path for lc in lcs]
        + [str(opts.config_file), manifest_path]
        + ([spec_path] if opts.generate_spec else [])
        + unit_paths
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

    # everything install writes, with its content: known before the first write
    contents: dict[str, str] = {str(opts.config_file): config_text}
    if opts.generate_spec:
        spec_text, spec_warns = early_spec or generate_cdi_spec(opts)
        warns += spec_warns
        if spec_text is not None:
            contents[spec_path] = spec_text
    if opts.units:
        # the units run on the node itself: paths without the --root prefix
        node_spec = os.path.join(unrooted(opts.root, str(opts.cdi_dir)), SPEC_NAME)
        generate_args = tuple(
            f"--{flag}={os.path.abspath(value)}"
            for flag, value in (
                ("driver-root", opts.driver_root if opts.driver_root not in ("", "/") else None),
                ("dev-root", opts.dev_root),
            )
            if value
        )
        contents[unit_paths[0]] = units.service_unit(opts.toolkit_dir, node_spec, generate_args)
        contents[unit_paths[1]] = units.path_unit(opts.toolkit_dir)
        contents[unit_paths[2]] = units.udev_rule()

    toolkit_dirs = _missing_dirs(manifest_path)  # made here: recorded in the manifest below
    try:
        os.makedirs(opts.toolkit_dir, exist_ok=True)
    except OSError as exc:
        raise GpuctkError(f"--toolkit-dir {opts.toolkit_dir}: cannot create: {_reason(exc)}") from None
    with FileLock([manifest_path, *contents]):
        _clean_scratch([manifest_path, *contents, *(lc.path for lc in lcs)])
        previous = _read_manifest(manifest_path)  # again, under the lock
        files: list[str] = list(previous.get("files", []))
        written: dict[str, str] = dict(previous.get("written", {}))
        backups: dict[str, str] = dict(previous.get("backups", {}))
        config_file = str(opts.config_file)
        config_created = previous.get("config_created", not os.path.exists(config_file))
        for path in contents:
            _plan_backup(path, previous, backups)
        drop_in = opts.drop_in or ""
        if drop_in and _current(drop_in) not in (None, "other"):
            text = engine_apply.read_text(drop_in) or ""
            if not text.startswith(GENERATED_HEADER):  # a user's own file where the drop-in goes
                _plan_backup(drop_in, previous, backups)
        for lc in lcs:
            written[lc.path] = "link:" + lc.target if lc.kind == "symlink" else digest(lc.target)
        for path, text in contents.items():
            written[path] = digest(text)
        for path in [*(lc.path for lc in lcs), *contents]:
            if path not in files:
                files.append(path)
        manifest = {
            "version": 2,
            # engine-config backups stamped from here on are install's (uninstall removes them)
            "started": previous.get("started") or _stamp(),
            "toolkit_dir": opts.toolkit_dir,
            "files": files,
            "written": written,
            "backups": backups,
            "config_file": config_file,
            "config_created": config_created,
            "engine": _recorded_engines(
                previous.get("engine", []), engine_options(opts) if opts.runtime != "none" else []
            ),
        }
        dirs: list[str] = list(previous.get("dirs", []))
        for path in [manifest_path, *contents]:
            for d in _missing_dirs(path) + (toolkit_dirs if path == manifest_path else []):
                if d not in dirs:
                    dirs.append(d)
        manifest["dirs"] = dirs
        _write_manifest(manifest_path, manifest)  # first: a killed install is still undone in full
        _make_backups(backups)
        for path, backup in backups.items():
            if backup not in previous.get("backups", {}).values():
                msgs.append(f"{path}: backed up to {backup}")

        for lc in lcs:
            changed = launchers.install_launcher(lc)
            msgs.append(f"{lc.path}: {'installed' if changed else 'unchanged'}")
        warns += launchers.compile_bytecode()
        msgs.append(_write_if_changed(config_file, config_text))

        if opts.runtime != "none":  # the three runtimes in one edit of each engine file
            plan = engine_apply.plan_all(engine_options(opts))
            warns += plan.warnings
            msgs += engine_apply.apply(plan)

        for path, text in contents.items():
            if path != config_file:
                msgs.append(_write_if_changed(path, text))
        if opts.units:
            msgs.append(
                f"enable with: systemctl daemon-reload && systemctl enable --now {units.PATH_UNIT} "
                f"{units.SERVICE} && udevadm control --reload"
            )
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
        raw = read_regular(path, 4 << 20)
    except FileNotFoundError:
        return {}
    except NotADirectoryError:
        raise GpuctkError(f"--toolkit-dir {os.path.dirname(path)}: not a directory") from None
    except OSError as exc:
        raise GpuctkError(f"{path}: unreadable install manifest: {exc.strerror or exc}") from None
    try:
        data = decode_json(raw.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise GpuctkError(f"{path}: unreadable install manifest: not UTF-8 text") from None
    except GpuctkError as exc:
        raise GpuctkError(
            f"{path}: unreadable install manifest: {str(exc).removeprefix(path + ': ')}"
        ) from None
    if not isinstance(data, dict):
        raise GpuctkError(f"{path}: unreadable install manifest: the top level must be a JSON object")
    files = data.get("files", [])
    if not (isinstance(files, list) and all(isinstance(f, str) and os.path.isabs(f) for f in files)):
        raise GpuctkError(f"{path}: field files: must be an array of absolute paths")
    for key in ("written", "backups"):
        value = data.get(key, {})
        if not (
            isinstance(value, dict) and all(os.path.isabs(k) and isinstance(v, str) for k, v in value.items())
        ):
            raise GpuctkError(f"{path}: field {key}: must be an object of absolute paths to strings")
    if not all(os.path.isabs(b) for b in data.get("backups", {}).values()):
        raise GpuctkError(f"{path}: field backups: must be an object of absolute paths to strings")
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
    """Remove what :func:`install` recorded; ``dry_run`` only says what would go.

    Only files under the paths install manages whose content is still what install wrote
    (the manifest's digest) are removed; a file install overwrote gets its backup back. Every
    file left in place is named with the reason."""
    opts = opts.resolved()
    manifest_path = os.path.join(opts.toolkit_dir, MANIFEST)
    if dry_run or not os.path.isdir(opts.toolkit_dir):
        return _uninstall(opts, manifest_path, dry_run)
    with FileLock(manifest_path):
        _clean_scratch(
            [
                manifest_path,
                *_read_manifest(manifest_path).get("files", []),
                *(lc.path for lc in launchers.plan_launchers(opts.toolkit_dir, opts.bin_dir)),
                str(opts.config_file),
                os.path.join(str(opts.cdi_dir), SPEC_NAME),
                os.path.join(str(opts.systemd_dir), units.SERVICE),
                os.path.join(str(opts.systemd_dir), units.PATH_UNIT),
                os.path.join(str(opts.udev_dir), units.UDEV_RULE),
            ]
        )
        made = _read_manifest(manifest_path).get("dirs", [])
        result = _uninstall(opts, manifest_path, dry_run)
    for d in [opts.toolkit_dir, *sorted((d for d in made if isinstance(d, str)), key=len, reverse=True)]:
        try:
            os.rmdir(d)  # only when empty
        except OSError:
            pass
    return result


def _uninstall(opts: InstallOptions, manifest_path: str, dry_run: bool) -> tuple[list[str], list[str]]:
    msgs: list[str] = []
    warns: list[str] = []
    manifest = _read_manifest(manifest_path)
    if not manifest:
        warns.append(f"{manifest_path} not found: removing what the given options describe")
    engine = [_configure_options(e, manifest_path) for e in manifest.get("engine", [])]
    if not engine and opts.runtime != "none":
        engine = engine_options(opts)
    if engine:  # each runtime planned on what removing the previous one leaves; one write per file
        plan = engine_apply.plan_all(engine, uninstall=True)
        warns += plan.warnings
        msgs += engine_apply.apply(plan, dry_run=dry_run)
        started = manifest.get("started")
        if isinstance(started, str) and not dry_run:  # the engine backups install and this run made
            for path in sorted({p for eo in engine for p in (eo.config, eo.drop_in) if p}):
                for b in engine_apply.backups(path):
                    if b[len(path) + len(engine_apply.BACKUP_INFIX) :] >= started:
                        os.unlink(b)

    written: dict[str, str] = manifest.get("written", {})
    backups: dict[str, str] = manifest.get("backups", {})
    roots = managed_roots(opts)
    config_file = manifest.get("config_file") or str(opts.config_file)
    files = list(
        manifest.get("files") or [lc.path for lc in launchers.plan_launchers(opts.toolkit_dir, opts.bin_dir)]
    )
    for path in [config_file, *backups]:  # the config and any file install backed up come last
        if path in files:
            files.remove(path)
        files.append(path)
    for path in files:
        now = _current(path)
        if path in backups:
            msg = _restore(path, backups[path], written.get(path), now, dry_run)
            (warns if "left in place" in msg else msgs).append(msg)
            continue
        if now is None:
            continue
        if path == config_file and not manifest.get("config_created", path in written):
            warns.append(f"{path}: existed before gpuctk install: left in place")
            continue
        if not _under(path, roots + ([os.path.abspath(config_file)] if path in written else [])):
            warns.append(f"{path}: outside the directories gpuctk install manages: left in place")
            continue
        if path in written:
            if now != written[path]:
                warns.append(f"{path}: changed since gpuctk install wrote it: left in place")
                continue
        elif _is_launcher_name(path) and not launchers.is_ours(path):  # a manifest without digests
            warns.append(f"{path}: not a gpuctk launcher, left in place")
            continue
        if dry_run:
            msgs.append(f"would remove {path}")
            continue
        try:
            os.unlink(path)
            msgs.append(f"{path}: removed")
        except FileNotFoundError:
            pass
        except OSError as exc:
            warns.append(f"{path}: cannot remove: {_reason(exc)}")
    for d in sorted(manifest.get("dirs", []), key=len, reverse=True):  # the directories install made
        if isinstance(d, str) and os.path.isabs(d) and not dry_run:
            try:
                os.rmdir(d)  # only when empty
            except OSError:
                pass
    if not manifest and os.path.isfile(str(opts.config_file)):
        warns.append(f"{opts.config_file} existed before gpuctk install: left in place")
    if dry_run:
        return msgs, warns
    try:
        os.unlink(manifest_path)
    except FileNotFoundError:
        pass
    return msgs, warns


def _is_launcher_name(path: str) -> bool:
    return os.path.basename(path) in launchers.SYMLINKS or os.path.basename(path) in launchers.WRAPPERS


def _restore(path: str, backup: str, ours: str | None, now: str | None, dry_run: bool) -> str:
    """Put the backup of a file install overwrote back, if the file is still install's (or gone)."""
    if not os.path.isfile(backup):
        return f"{path}: its backup {backup} is missing: left in place"
    if now is not None and ours is not None and now != ours:
        if path.endswith(".toml") and now != "other":
            text = engine_apply.read_text(path) or ""
            if text.startswith(GENERATED_HEADER):  # an engine drop-in gpuctk rewrote
                now = ours
        if now != ours and now != _current(backup):
            return f"{path}: changed since gpuctk install wrote it: left in place (the original is {backup})"
    if dry_run:
        return f"would restore {path} from {backup}"
    try:
        copy_atomic(backup, path)
        os.unlink(backup)
    except OSError as exc:
        return f"{path}: cannot restore from {backup}: {_reason(exc)}: left in place"
    return f"{path}: restored from {backup}"
