"""containerd: add (or remove) the GPU runtime, default runtime and CDI settings.

Pure: file contents in, :class:`Plan` out. The wanted state is computed on plain dicts
and then written back through :func:`tomlsync.sync`, so untouched parts of a user's
config keep their comments and layout.

Upstream facts followed (NVIDIA/nvidia-container-toolkit ``pkg/config/engine/containerd/``):
- config ``version`` 1/2/3 select the CRI plugin table ``plugins.cri`` /
  ``plugins."io.containerd.grpc.v1.cri"`` / ``plugins."io.containerd.cri.v1.runtime"``;
  ``version = 4`` (containerd 2.3's ``config default``) keeps the version-3 table, and
  containerd 2.3 loads a version-3 drop-in imported from it;
- the runtime entry copies the default runtime's settings (else runc's, else crun's),
  then sets ``runtime_type`` and ``options.BinaryName``;
- with a drop-in, containerd < 2.0 *replaces* a plugin table from an import instead of
  merging it (containerd/containerd#5837), so the drop-in must hold a copy of the whole CRI
  table, the default runtime's entry included (else the CRI plugin refuses to load:
  "no corresponding runtime configured in containerd.runtimes for default_runtime_name").
"""

from __future__ import annotations

import copy
import fnmatch
import os
from collections.abc import Callable
from typing import Any

from gpuctk.engines import tomlsync
from gpuctk.engines.dicts import deep_merge, delete_in, ensure_in, get_in, require_tables, set_in, table
from gpuctk.engines.model import GENERATED_HEADER, ConfigureOptions, FileChange, Plan
from gpuctk.engines.versions import Version
from gpuctk.errors import GpuctkError

Reader = Callable[[str], "str | None"]
# (path, predicate) -> the newest backup of path whose parsed content satisfies predicate
PriorLookup = Callable[[str, Callable[[dict[str, Any]], bool]], "dict[str, Any] | None"]

CRI_PLUGIN = {
    1: ("plugins", "cri"),
    2: ("plugins", "io.containerd.grpc.v1.cri"),
    3: ("plugins", "io.containerd.cri.v1.runtime"),
    4: ("plugins", "io.containerd.cri.v1.runtime"),
}
KNOWN_VERSIONS = tuple(CRI_PLUGIN)
RUNC_TYPE = "io.containerd.runc.v2"
RUNSC_TYPE = "io.containerd.runsc.v1"
RUNSC_OPTIONS_TYPE = "io.containerd.runsc.v1.options"
# containerd's own runc entry, for a CRI table that has none (no config file): only keys
# every version knows (runtime_root/runtime_engine are unknown to 2.x and logged as such).
DEFAULT_ENTRY: dict[str, Any] = {"runtime_type": RUNC_TYPE}
# Settings gpuctk owns in the CRI table, as paths below it.
_CDI_KEYS = (("enable_cdi",), ("cdi_spec_dirs",))
_DEFAULT_KEY = ("containerd", "default_runtime_name")


def config_version(
    plain: dict[str, Any],
    engine_version: Version | None,
    source: str = "containerd config",
    force: int | None = None,
) -> int:
    """The config version: the file's ``version``; 1 for a file without it; for an empty
    file the engine's native one (3 for containerd >= 2.0, else 2). An unknown version is
    refused unless ``force`` names a known one to treat it as."""
    if not plain:
        return 3 if engine_version is not None and engine_version >= (2, 0, 0) else 2
    v = plain.get("version", 1)
    if isinstance(v, bool) or not isinstance(v, int) or v not in CRI_PLUGIN:
        if force in CRI_PLUGIN and isinstance(v, int) and not isinstance(v, bool):
            return force
        known = ", ".join(str(k) for k in KNOWN_VERSIONS)
        raise GpuctkError(
            f"{source}: field version: unsupported value {v!r} (gpuctk knows {known}; "
            "--force-config-version N edits it as version N)"
        )
    return v


def drop_in_version(version: int) -> int:
    """The ``version`` a drop-in is written with: 3 under a version-4 main config (containerd
    2.3 migrates an imported version-3 file, and older 2.x readers of the same drop-in
    directory understand it)."""
    return 3 if version == 4 else version


def check_shape(plain: dict[str, Any], version: int, opts: ConfigureOptions, source: str) -> None:
    """Refuse (rather than overwrite) values of the wrong type where gpuctk edits."""
    imports = plain.get("imports")
    if imports is not None and not (isinstance(imports, list) and all(isinstance(i, str) for i in imports)):
        raise GpuctkError(f"{source}: field imports: must be an array of strings")
    require_tables(
        plain, (*CRI_PLUGIN[version], "containerd", "runtimes", opts.runtime_name, "options"), source
    )
    default = get_in(plain, (*CRI_PLUGIN[version], *_DEFAULT_KEY))
    if default is not None and not isinstance(default, str):
        field = ".".join((*CRI_PLUGIN[version], *_DEFAULT_KEY))
        raise GpuctkError(f"{source}: field {field}: must be a string, not {_toml_kind(default)}")


def _toml_kind(value: Any) -> str:
    """The TOML word for a decoded value's type, for messages."""
    kinds = {dict: "a table", list: "an array", bool: "a boolean", int: "an integer", float: "a float"}
    return kinds.get(type(value), type(value).__name__)


def copies_whole_cri_table(engine_version: Version | None) -> bool:
    """containerd < 2.0 (or unknown) replaces imported plugin tables instead of merging them."""
    return engine_version is None or engine_version < (2, 0, 0)


def knows_cdi_keys(engine_version: Version | None) -> bool:
    """``enable_cdi``/``cdi_spec_dirs`` exist from containerd 1.7 on (unknown: assume so)."""
    return engine_version is None or engine_version >= (1, 7, 0)


def _fill_default_runtime(cri: dict[str, Any]) -> None:
    """A CRI table that replaces containerd's own (< 2.0) loses containerd's built-in runc
    entry, which is the default runtime unless the file names another: add it back where
    the table has none (with nvidia as the default, plain runc stays available too)."""
    runtimes = get_in(cri, ("containerd", "runtimes"))
    if not (isinstance(runtimes, dict) and isinstance(runtimes.get("runc"), dict)):
        set_in(cri, ("containerd", "runtimes", "runc"), dict(DEFAULT_ENTRY))


# ------------------------------------------------------------------ the runtime entry
def runtime_entry(cri: dict[str, Any], opts: ConfigureOptions, version: int) -> dict[str, Any]:
    """The ``containerd.runtimes.<name>`` table wanted for ``opts`` given the CRI table."""
    entry = _runtime_entry(cri, opts, version)
    if opts.container_annotations:
        have = entry.get("container_annotations")
        have = [a for a in have if isinstance(a, str)] if isinstance(have, list) else []
        entry["container_annotations"] = have + [a for a in opts.container_annotations if a not in have]
    return entry


def _runtime_entry(cri: dict[str, Any], opts: ConfigureOptions, version: int) -> dict[str, Any]:
    runtimes = table(get_in(cri, ("containerd", "runtimes")))
    existing = runtimes.get(opts.runtime_name)
    if opts.low_level_runtime == "runsc":
        # gVisor's shim runs runsc itself; runsc.toml's binary_name points it at the GPU runtime.
        entry = copy.deepcopy(existing) if isinstance(existing, dict) else {}
        entry["runtime_type"] = RUNSC_TYPE
        options = entry.setdefault("options", {})
        for key in ("BinaryName", "Runtime", "SystemdCgroup"):
            options.pop(key, None)
        options["TypeUrl"] = RUNSC_OPTIONS_TYPE
        options["ConfigPath"] = opts.runsc_config
        return entry
    if isinstance(existing, dict):
        entry = copy.deepcopy(existing)  # keep what the user tuned on our entry
    else:
        entry = copy.deepcopy(_source_runtime(cri, opts.runtime_name))
    if entry.get("runtime_type") in (None, "", RUNSC_TYPE):
        entry["runtime_type"] = RUNC_TYPE
    options = entry.get("options")
    if not isinstance(options, dict):
        options = {}
        entry["options"] = options
    if options.get("TypeUrl") == RUNSC_OPTIONS_TYPE:  # left from a --low-level-runtime runsc run
        options.pop("TypeUrl")
        options.pop("ConfigPath", None)
    options["BinaryName"] = opts.runtime_path
    if version == 1:
        options["Runtime"] = opts.runtime_path
    return entry


def _source_runtime(cri: dict[str, Any], name: str) -> dict[str, Any]:
    runtimes = table(get_in(cri, ("containerd", "runtimes")))
    default = get_in(cri, _DEFAULT_KEY) or "runc"
    candidates = [default] if not str(default).startswith("nvidia") else []
    for cand in [*candidates, "runc", "crun"]:
        if cand != name and isinstance(runtimes.get(cand), dict):
            return dict(runtimes[cand])
    return dict(DEFAULT_ENTRY)


def apply_settings(
    cri: dict[str, Any], opts: ConfigureOptions, version: int, copy_from: dict[str, Any] | None = None
) -> None:
    """Put the runtime, default runtime and CDI settings of ``opts`` into a CRI table.
    ``copy_from``: the CRI table the runtime entry copies from (default ``cri`` itself)."""
    entry = runtime_entry(cri if copy_from is None else copy_from, opts, version)
    set_in(cri, ("containerd", "runtimes", opts.runtime_name), entry)
    if opts.set_as_default:
        set_in(cri, _DEFAULT_KEY, opts.runtime_name)
    elif get_in(cri, _DEFAULT_KEY) == opts.runtime_name:
        delete_in(cri, _DEFAULT_KEY)
    if not knows_cdi_keys(opts.engine_version):
        return  # containerd < 1.7 would ignore them: never written (plan_configure warns)
    if opts.enable_cdi:
        cri["enable_cdi"] = True
    if opts.cdi_spec_dirs:
        cri["cdi_spec_dirs"] = list(opts.cdi_spec_dirs)


def render_runsc_toml(existing: str | None, opts: ConfigureOptions) -> str:
    """runsc.toml for containerd-shim-runsc-v1: run the GPU runtime, with nvproxy on."""
    if existing and existing.strip():
        doc = tomlsync.parse_doc(existing, opts.runsc_config)
        plain = doc.unwrap()
        plain["binary_name"] = opts.runtime_path
        plain.setdefault("runsc_config", {})["nvproxy"] = "true"
        tomlsync.sync(doc, plain)
        return str(doc.as_string())
    return GENERATED_HEADER + tomlsync.dumps_plain(
        {"binary_name": opts.runtime_path, "runsc_config": {"nvproxy": "true"}}
    )


# ------------------------------------------------------------------ configure
def plan_configure(opts: ConfigureOptions, read: Reader) -> Plan:
    plan = Plan()
    main_text = read(opts.config)
    main_doc = tomlsync.parse_doc(main_text or "", opts.config)
    main = main_doc.unwrap()
    version = config_version(main, opts.engine_version, opts.config, opts.force_config_version)
    check_shape(main, version, opts, opts.config)
    cri_path = CRI_PLUGIN[version]

    if (opts.enable_cdi or opts.cdi_spec_dirs) and not knows_cdi_keys(opts.engine_version):
        plan.warnings.append(
            f"containerd {'.'.join(map(str, opts.engine_version or ()))} has no native CDI: "
            "--enable-cdi/--cdi-spec-dir not written (containerd < 1.7 ignores them)"
        )
    if opts.drop_in and version == 1:
        plan.warnings.append(
            f"{opts.config} is a version 1 config, which has no `imports`: editing it in place"
        )
    if opts.drop_in and version >= 2:
        _plan_drop_in(plan, opts, read, main_doc, main, main_text, version)
    else:
        wanted = copy.deepcopy(main)
        if not main:
            wanted["version"] = version
        apply_settings(ensure_in(wanted, cri_path), opts, version)
        tomlsync.sync(main_doc, wanted)
        plan.add(FileChange(opts.config, main_text, main_doc.as_string(), backup=True))

    if opts.low_level_runtime == "runsc":
        old = read(opts.runsc_config)
        plan.add(FileChange(opts.runsc_config, old, render_runsc_toml(old, opts), backup=old is not None))
    return plan


def _import_glob(drop_in: str) -> str:
    return os.path.join(os.path.dirname(drop_in), "*.toml")


def _imports_cover(imports: list[Any], drop_in: str) -> bool:
    return any(isinstance(i, str) and (i == drop_in or fnmatch.fnmatch(drop_in, i)) for i in imports)


def _carry_over(source: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the main CRI table plus what an earlier gpuctk run added to the drop-in."""
    base = copy.deepcopy(source)
    src_runtimes = table(get_in(source, ("containerd", "runtimes")))
    for name, entry in table(get_in(existing, ("containerd", "runtimes"))).items():
        if name not in src_runtimes:
            set_in(base, ("containerd", "runtimes", name), copy.deepcopy(entry))
    for path in (_DEFAULT_KEY, *_CDI_KEYS):
        value = get_in(existing, path)
        if value is not None and value != get_in(source, path):
            set_in(base, path, copy.deepcopy(value))
    return base


def _plan_drop_in(
    plan: Plan,
    opts: ConfigureOptions,
    read: Reader,
    main_doc: Any,
    main: dict[str, Any],
    main_text: str | None,
    version: int,
) -> None:
    cri_path = CRI_PLUGIN[version]
    source = table(get_in(main, cri_path))
    old_drop = read(opts.drop_in)
    existing_drop = tomlsync.parse_plain(old_drop, opts.drop_in) if old_drop else {}
    check_shape(existing_drop, version, opts, opts.drop_in)
    existing = table(get_in(existing_drop, cri_path))
    if copies_whole_cri_table(opts.engine_version):
        if old_drop is not None and not old_drop.startswith(GENERATED_HEADER):
            # the user's own file: its settings are meant, not a stale copy of the main table
            cri = deep_merge(copy.deepcopy(source), copy.deepcopy(existing))
        else:
            cri = _carry_over(source, existing)
        apply_settings(cri, opts, version)
        _fill_default_runtime(cri)
    else:
        # containerd >= 2.0 merges imports key by key: the drop-in holds only our settings,
        # but the runtime entry still copies from the merged view.
        cri = copy.deepcopy(existing)
        apply_settings(cri, opts, version, copy_from=deep_merge(copy.deepcopy(source), cri))
    drop = {"version": drop_in_version(version)}
    set_in(drop, cri_path, cri)
    # a file at the drop-in path that gpuctk did not write is the user's: back it up first
    # (uninstall puts it back)
    foreign = old_drop is not None and not old_drop.startswith(GENERATED_HEADER)
    plan.add(
        FileChange(opts.drop_in, old_drop, GENERATED_HEADER + tomlsync.dumps_plain(drop), backup=foreign)
    )

    wanted = copy.deepcopy(main)
    if not main:
        wanted["version"] = version
    imports = list(wanted.get("imports") or [])
    if not _imports_cover(imports, opts.drop_in):
        imports.append(_import_glob(opts.drop_in))
        wanted["imports"] = imports
    tomlsync.sync(main_doc, wanted)
    plan.add(FileChange(opts.config, main_text, main_doc.as_string(), backup=True))


# ------------------------------------------------------------------ uninstall
def remove_settings(
    cri: dict[str, Any], opts: ConfigureOptions, before: dict[str, Any] | None, restore_cdi: bool
) -> str | None:
    """Undo :func:`apply_settings` for ``opts.runtime_name`` on a CRI table.

    ``before``: the CRI table as it was before gpuctk touched it (from the newest backup
    without our runtime, or the main config for a drop-in), or None when unknown; the
    default runtime and the CDI keys are put back to its values. Returns the runsc
    ConfigPath of the removed entry, if any.
    """
    entry = get_in(cri, ("containerd", "runtimes", opts.runtime_name))
    config_path = None
    if isinstance(entry, dict) and entry.get("runtime_type") == RUNSC_TYPE:
        config_path = get_in(entry, ("options", "ConfigPath"))
    delete_in(cri, ("containerd", "runtimes", opts.runtime_name))
    if get_in(cri, _DEFAULT_KEY) == opts.runtime_name:
        previous = get_in(before, _DEFAULT_KEY) if before is not None else None
        if previous is not None and previous != opts.runtime_name:
            set_in(cri, _DEFAULT_KEY, previous)
        else:
            delete_in(cri, _DEFAULT_KEY)
    if restore_cdi and before is not None:
        for path in _CDI_KEYS:
            previous = get_in(before, path)
            if previous is None:
                delete_in(cri, path)
            else:
                set_in(cri, path, copy.deepcopy(previous))
    return config_path if isinstance(config_path, str) else None


def lacks_runtime(plain: dict[str, Any], name: str) -> bool:
    """No ``name`` runtime and no other GPU runtime: the state before gpuctk."""
    from gpuctk.engines.detect import containerd_facts

    return (
        all(get_in(plain, (*path, "containerd", "runtimes", name)) is None for path in CRI_PLUGIN.values())
        and not containerd_facts(plain)["gpu_runtimes"]
    )


def _has_other_gpu_runtimes(cri: dict[str, Any], source: dict[str, Any]) -> bool:
    src = set(table(get_in(source, ("containerd", "runtimes"))).keys())
    runtimes = table(get_in(cri, ("containerd", "runtimes")))
    extra = set(runtimes) - src
    if runtimes.get("runc") == DEFAULT_ENTRY:
        extra.discard("runc")  # the entry _fill_default_runtime added
    return bool(extra)


def plan_uninstall(opts: ConfigureOptions, read: Reader, prior: PriorLookup) -> Plan:
    plan = Plan()
    main_text = read(opts.config)
    if main_text is None and not (opts.drop_in and read(opts.drop_in) is not None):
        plan.warnings.append(f"{opts.config} does not exist: nothing to remove")
        return plan
    main_doc = tomlsync.parse_doc(main_text or "", opts.config)
    main = main_doc.unwrap()
    version = config_version(main, opts.engine_version, opts.config, opts.force_config_version)
    check_shape(main, version, opts, opts.config)
    cri_path = CRI_PLUGIN[version]
    runsc_path: str | None = None

    old_drop = read(opts.drop_in) if opts.drop_in and version >= 2 else None
    if old_drop is not None:
        drop = tomlsync.parse_plain(old_drop, opts.drop_in)
        check_shape(drop, version, opts, opts.drop_in)
        source = table(get_in(main, cri_path))
        cri = copy.deepcopy(table(get_in(drop, cri_path)))
        copy_mode = copies_whole_cri_table(opts.engine_version)
        # the default runtime goes back to the main config's (copy mode) or is dropped
        runsc_path = remove_settings(cri, opts, source if copy_mode else {}, restore_cdi=False)
        if not _has_other_gpu_runtimes(cri, source):
            users = prior(opts.drop_in, lambda d: lacks_runtime(d, opts.runtime_name))
            if users is not None:
                # the user's own file was there before gpuctk: it comes back (backup bytes, apply.plan)
                plan.add(FileChange(opts.drop_in, old_drop, tomlsync.dumps_plain(users), backup=True))
            else:
                plan.add(FileChange(opts.drop_in, old_drop, None, note="gpuctk drop-in removed"))
            wanted = copy.deepcopy(main)
            # the import gpuctk added: any entry covering the drop-in that the pre-gpuctk file lacked
            before = prior(
                opts.config, lambda d: not _imports_cover(list(d.get("imports") or []), opts.drop_in)
            )
            kept = list((before or {}).get("imports") or [])
            imports = [
                i for i in (wanted.get("imports") or []) if i in kept or not _imports_cover([i], opts.drop_in)
            ]
            if imports or (before is not None and "imports" in before):
                wanted["imports"] = imports  # an `imports = []` the user had stays
            else:
                wanted.pop("imports", None)
            if before is None and main_text is not None and not (set(wanted) <= {"version"}):
                # every edit of an existing file is backed up first: with no backup from before
                # the import, gpuctk never edited this file (its import already covered the drop-in)
                pass
            elif set(wanted) <= {"version"} and before is None and main_text is not None:
                # gpuctk created this file only to import the drop-in
                plan.add(FileChange(opts.config, main_text, None))
            elif main_text is not None:
                tomlsync.sync(main_doc, wanted)
                plan.add(FileChange(opts.config, main_text, main_doc.as_string(), backup=True))
        else:
            new_drop = {"version": drop_in_version(version)}
            set_in(new_drop, cri_path, cri)
            plan.add(FileChange(opts.drop_in, old_drop, GENERATED_HEADER + tomlsync.dumps_plain(new_drop)))
    elif main_text is not None:
        wanted = copy.deepcopy(main)
        created = False
        cri = get_in(wanted, cri_path)
        if isinstance(cri, dict):
            before_doc = prior(opts.config, lambda d: lacks_runtime(d, opts.runtime_name))
            # every change to an existing file is backed up first: no backup from before any GPU
            # runtime means gpuctk created the file
            created = before_doc is None
            before = table(get_in(before_doc or {}, cri_path))
            from gpuctk.engines.detect import containerd_facts

            others = [n for n in containerd_facts(wanted)["gpu_runtimes"] if n != opts.runtime_name]
            runsc_path = remove_settings(cri, opts, before, restore_cdi=not others)
            if not cri:
                delete_in(wanted, cri_path)
        if set(wanted) <= {"version"} and created:
            # gpuctk created this file (there was nothing to back up): remove it again
            plan.add(FileChange(opts.config, main_text, None))
        else:
            tomlsync.sync(main_doc, wanted)
            plan.add(FileChange(opts.config, main_text, main_doc.as_string(), backup=True))

    if runsc_path:
        old = read(runsc_path)
        if old is not None and old.startswith(GENERATED_HEADER):
            plan.add(FileChange(runsc_path, old, None, note="runsc.toml written by gpuctk"))
        elif old is not None:
            plan.warnings.append(f"{runsc_path} was not written by gpuctk: left in place")
    return plan
