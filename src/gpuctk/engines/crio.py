"""CRI-O: a drop-in with ``crio.runtime.runtimes.<name>`` (config-file mode) or a JSON OCI hook.

Pure: text in, :class:`Plan` out (upstream: NVIDIA/nvidia-container-toolkit
``pkg/config/engine/crio/crio.go``). Unlike upstream, an
existing drop-in is edited rather than replaced (so ``nvidia``, ``nvidia-cdi`` and
``nvidia-legacy`` can be added one call at a time), and ``--drop-in-config ""`` edits
``crio.conf`` in place keeping its comments instead of overwriting it.
CDI is always on in CRI-O >= 1.23.2, so ``--enable-cdi`` only warns.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from gpuctk.engines import tomlsync
from gpuctk.engines.containerd import PriorLookup, Reader
from gpuctk.engines.dicts import (
    deep_merge,
    delete_in,
    get_in,
    require_tables,
    restore_empty_tables,
    set_in,
    table,
)
from gpuctk.engines.model import GENERATED_HEADER, ConfigureOptions, FileChange, Plan
from gpuctk.errors import GpuctkError

_RUNTIMES = ("crio", "runtime", "runtimes")
_DEFAULT = ("crio", "runtime", "default_runtime")
_SPEC_DIRS = ("crio", "runtime", "cdi_spec_dirs")
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _source_entry(merged: dict[str, Any], name: str) -> dict[str, Any]:
    runtimes = table(get_in(merged, _RUNTIMES))
    default = get_in(merged, _DEFAULT) or "crun"
    candidates = [default] if not str(default).startswith("nvidia") else []
    for cand in [*candidates, "runc", "crun"]:
        if cand != name and isinstance(runtimes.get(cand), dict):
            return copy.deepcopy(runtimes[cand])
    return {}


def require_scalars(data: dict[str, Any], source: str) -> None:
    """The scalar settings gpuctk reads must have their type (an array as ``default_runtime``
    would otherwise fail deep inside as an internal error)."""
    value = get_in(data, _DEFAULT)
    if value is not None and not isinstance(value, str):
        raise GpuctkError(f"{source}: field {'.'.join(_DEFAULT)}: must be a string, not {_kind(value)}")
    dirs = get_in(data, _SPEC_DIRS)
    if dirs is not None and not (isinstance(dirs, list) and all(isinstance(d, str) for d in dirs)):
        raise GpuctkError(f"{source}: field {'.'.join(_SPEC_DIRS)}: must be an array of strings")


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", bool: "a boolean", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )


def apply_settings(dest: dict[str, Any], merged: dict[str, Any], opts: ConfigureOptions, source: str) -> None:
    require_tables(dest, (*_RUNTIMES, opts.runtime_name), source)
    require_scalars(dest, source)
    require_scalars(merged, source)
    existing = get_in(dest, (*_RUNTIMES, opts.runtime_name))
    entry = (
        copy.deepcopy(existing) if isinstance(existing, dict) else _source_entry(merged, opts.runtime_name)
    )
    entry["runtime_path"] = opts.runtime_path
    entry["runtime_type"] = "oci"
    set_in(dest, (*_RUNTIMES, opts.runtime_name), entry)
    if opts.set_as_default:
        set_in(dest, _DEFAULT, opts.runtime_name)
    elif get_in(dest, _DEFAULT) == opts.runtime_name:
        delete_in(dest, _DEFAULT)
    if opts.cdi_spec_dirs:
        set_in(dest, _SPEC_DIRS, list(opts.cdi_spec_dirs))


def oci_hook(hook_path: str) -> dict[str, Any]:
    """The podman/CRI-O hook (hooks.d JSON, version 1.0.0) running the legacy prestart hook."""
    hook_dir = os.path.dirname(hook_path)
    path_env = STD_PATH if hook_dir in STD_PATH.split(":") else f"{STD_PATH}:{hook_dir}"
    return {
        "version": "1.0.0",
        "hook": {
            "path": hook_path,
            "args": [os.path.basename(hook_path), "prestart"],
            "env": [f"PATH={path_env}"],
        },
        "when": {"always": True, "commands": [".*"]},
        "stages": ["prestart"],
    }


def _is_gpu_hook(text: str) -> bool:
    try:
        path = json.loads(text)["hook"]["path"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return False
    return isinstance(path, str) and os.path.basename(path).startswith(
        ("nvidia-container-runtime-hook", "nvidia-container-toolkit", "gpuctk")
    )


def plan_configure(opts: ConfigureOptions, read: Reader) -> Plan:
    plan = Plan()
    if opts.enable_cdi:
        plan.warnings.append("CRI-O >= 1.23.2 always has CDI enabled: --enable-cdi changes nothing")
    if opts.config_mode == "oci-hook":
        old = read(opts.oci_hook_file)
        # someone else's file at that path is replaced, but backed up first
        plan.add(
            FileChange(
                opts.oci_hook_file,
                old,
                json.dumps(oci_hook(opts.hook_path), indent=2) + "\n",
                backup=old is not None and not _is_gpu_hook(old),
            )
        )
        return plan
    main_text = read(opts.config)
    if opts.drop_in:
        main = tomlsync.parse_plain(main_text or "", opts.config)
        require_scalars(main, opts.config)
        old_drop = read(opts.drop_in)
        dest = tomlsync.parse_plain(old_drop or "", opts.drop_in)
        apply_settings(dest, deep_merge(copy.deepcopy(main), dest), opts, opts.drop_in)
        plan.add(FileChange(opts.drop_in, old_drop, GENERATED_HEADER + tomlsync.dumps_plain(dest)))
        return plan
    doc = tomlsync.parse_doc(main_text or "", opts.config)
    wanted = doc.unwrap()
    apply_settings(wanted, copy.deepcopy(wanted), opts, opts.config)
    tomlsync.sync(doc, wanted)
    plan.add(FileChange(opts.config, main_text, doc.as_string(), backup=True))
    return plan


def lacks_runtime(plain: dict[str, Any], name: str) -> bool:
    """No ``name`` runtime and no other GPU runtime: the state before gpuctk."""
    from gpuctk.engines.detect import crio_facts

    return get_in(plain, (*_RUNTIMES, name)) is None and not crio_facts(plain)["gpu_runtimes"]


def plan_uninstall(opts: ConfigureOptions, read: Reader, prior: PriorLookup) -> Plan:
    plan = Plan()
    if opts.config_mode == "oci-hook":
        old = read(opts.oci_hook_file)
        if old is None:
            plan.warnings.append(f"{opts.oci_hook_file} does not exist: nothing to remove")
        elif not _is_gpu_hook(old):
            plan.warnings.append(f"{opts.oci_hook_file} is not a GPU prestart hook: left in place")
        else:
            plan.add(FileChange(opts.oci_hook_file, old, None, note="OCI hook removed"))
        return plan
    if opts.drop_in:
        old_drop = read(opts.drop_in)
        if old_drop is None:
            plan.warnings.append(f"{opts.drop_in} does not exist: nothing to remove")
            return plan
        dest = tomlsync.parse_plain(old_drop, opts.drop_in)
        delete_in(dest, (*_RUNTIMES, opts.runtime_name))
        if get_in(dest, _DEFAULT) == opts.runtime_name:
            delete_in(dest, _DEFAULT)
        if not get_in(dest, _RUNTIMES):
            plan.add(FileChange(opts.drop_in, old_drop, None, note="gpuctk drop-in removed"))
        else:
            plan.add(FileChange(opts.drop_in, old_drop, GENERATED_HEADER + tomlsync.dumps_plain(dest)))
        return plan
    main_text = read(opts.config)
    if main_text is None:
        plan.warnings.append(f"{opts.config} does not exist: nothing to remove")
        return plan
    doc = tomlsync.parse_doc(main_text, opts.config)
    wanted = doc.unwrap()
    require_scalars(wanted, opts.config)
    prior_data = prior(opts.config, lambda d: lacks_runtime(d, opts.runtime_name))
    created = prior_data is None  # no backup from before any GPU runtime: gpuctk created the file
    before = prior_data or {}
    delete_in(wanted, (*_RUNTIMES, opts.runtime_name))
    if get_in(wanted, _DEFAULT) == opts.runtime_name:
        previous = get_in(before, _DEFAULT)
        if previous and previous != opts.runtime_name:
            set_in(wanted, _DEFAULT, previous)
        else:
            delete_in(wanted, _DEFAULT)
    from gpuctk.engines.detect import crio_facts

    if not crio_facts(wanted)["gpu_runtimes"]:
        previous = get_in(before, _SPEC_DIRS)
        if previous is None:
            delete_in(wanted, _SPEC_DIRS)
        else:
            set_in(wanted, _SPEC_DIRS, previous)
    if not wanted and created:
        plan.add(FileChange(opts.config, main_text, None))  # gpuctk created it: remove it again
        return plan
    restore_empty_tables(wanted, before)
    tomlsync.sync(doc, wanted)
    plan.add(FileChange(opts.config, main_text, doc.as_string(), backup=True))
    return plan
