"""Docker: ``daemon.json`` gets ``runtimes.<name>``, ``default-runtime`` and ``features.cdi``.

Pure: text in, :class:`Plan` out. Differences from upstream (NVIDIA/nvidia-container-toolkit
``pkg/config/engine/docker/docker.go``), on purpose: existing ``features`` keys are merged
instead of replaced by ``{"cdi": true}``; the file keeps its key order and indentation
instead of being re-sorted with 4 spaces; CDI keys are gated by the daemon's version
(``dockerd --version``): ``cdi-spec-dirs`` is not a daemon.json option before Docker 25
(dockerd refuses to start on it) and ``features.cdi`` does nothing before 25, so neither
is written for an older daemon.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from gpuctk.engines.containerd import PriorLookup, Reader
from gpuctk.engines.model import ConfigureOptions, FileChange, Plan
from gpuctk.engines.tomlsync import ConfigSyntaxError
from gpuctk.errors import GpuctkError


def parse_daemon_json(text: str | None, source: str) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(
            f"{source}: invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ConfigSyntaxError(f"{source}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigSyntaxError(f"{source}: invalid daemon config: the top level must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigSyntaxError(
            f"{source}: invalid daemon config: a string holds a lone surrogate ({exc.object[exc.start]!r}), "
            "which is not UTF-8"
        ) from None
    for key in ("default-runtime",):
        if key in data and not isinstance(data[key], str):
            raise ConfigSyntaxError(
                f"{source}: field {key}: must be a string, not {type(data[key]).__name__}"
            )
    return data


def _indent_of(text: str | None) -> str | int:
    m = re.search(r'^([ \t]+)"', text or "", re.MULTILINE)
    if not m:
        return 4
    return m.group(1)


def render(data: dict[str, Any], like: str | None) -> str:
    indent = _indent_of(like)
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _finish(
    plan: Plan,
    opts: ConfigureOptions,
    text: str | None,
    before: dict[str, Any],
    after: dict[str, Any],
    delete_if_empty: bool = False,
) -> Plan:
    if after == before and text is not None:
        new: str | None = text  # semantically unchanged: leave the bytes alone
    elif delete_if_empty and not after:
        new = None
    else:
        new = render(after, text)
    plan.add(FileChange(opts.config, text, new, backup=True))
    return plan


CDI_MIN_VERSION = (25, 0, 0)


def _cdi_keys(opts: ConfigureOptions, plan: Plan) -> tuple[bool, bool]:
    """Whether ``features.cdi`` and ``cdi-spec-dirs`` may be written for this daemon."""
    v = opts.engine_version
    if v is not None and v < CDI_MIN_VERSION:
        vs = ".".join(map(str, v))
        if opts.enable_cdi:
            plan.warnings.append(f"Docker {vs} < 25 has no CDI: features.cdi not written (--enable-cdi)")
        if opts.cdi_spec_dirs:
            plan.warnings.append(
                f"Docker {vs} < 25 does not know cdi-spec-dirs (dockerd would refuse to start): "
                "not written (--cdi-spec-dir)"
            )
        return False, False
    if v is None and opts.cdi_spec_dirs:
        plan.warnings.append(
            "Docker version unknown: cdi-spec-dirs needs Docker >= 25 (dockerd older "
            "than that refuses to start on it)"
        )
    return True, True


def plan_configure(opts: ConfigureOptions, read: Reader) -> Plan:
    plan = Plan()
    if opts.drop_in:
        raise GpuctkError("docker has no drop-in config files: leave --drop-in-config empty", exit_code=2)
    text = read(opts.config)
    data = parse_daemon_json(text, opts.config)
    new = copy.deepcopy(data)
    runtimes = new.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise GpuctkError(f"{opts.config}: field runtimes: must be a JSON object")
    entry = runtimes.get(opts.runtime_name)
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry["path"] = opts.runtime_path
    entry.setdefault("args", [])
    runtimes[opts.runtime_name] = entry
    if opts.set_as_default:
        new["default-runtime"] = opts.runtime_name
    cdi_ok, dirs_ok = _cdi_keys(opts, plan)
    if opts.enable_cdi and cdi_ok:
        features = new.setdefault("features", {})
        if not isinstance(features, dict):
            raise GpuctkError(f"{opts.config}: field features: must be a JSON object")
        features["cdi"] = True  # merged: other feature flags stay (upstream replaces them)
    if opts.cdi_spec_dirs and dirs_ok:
        new["cdi-spec-dirs"] = list(opts.cdi_spec_dirs)
    return _finish(plan, opts, text, data, new)


def lacks_runtime(plain: dict[str, Any], name: str) -> bool:
    """No ``name`` runtime and no other GPU runtime: the state before gpuctk."""
    from gpuctk.engines.detect import docker_facts

    runtimes = plain.get("runtimes")
    return not (isinstance(runtimes, dict) and name in runtimes) and not docker_facts(plain)["gpu_runtimes"]


def plan_uninstall(opts: ConfigureOptions, read: Reader, prior: PriorLookup) -> Plan:
    plan = Plan()
    text = read(opts.config)
    if text is None:
        plan.warnings.append(f"{opts.config} does not exist: nothing to remove")
        return plan
    data = parse_daemon_json(text, opts.config)
    # Every change gpuctk makes to an existing file is backed up first, so no backup from before
    # any GPU runtime means the file did not exist before gpuctk.
    prior_data = prior(opts.config, lambda d: lacks_runtime(d, opts.runtime_name))
    created = prior_data is None
    before = prior_data or {}
    new = copy.deepcopy(data)
    runtimes = new.get("runtimes")
    if isinstance(runtimes, dict):
        runtimes.pop(opts.runtime_name, None)
        if not runtimes and "runtimes" not in before:
            del new["runtimes"]
    if new.get("default-runtime") == opts.runtime_name:
        previous = before.get("default-runtime")
        if previous and previous != opts.runtime_name:
            new["default-runtime"] = previous
        else:
            new.pop("default-runtime", None)
    from gpuctk.engines.detect import docker_facts

    if not docker_facts(new)["gpu_runtimes"]:
        # CDI settings go back once the last GPU runtime is gone
        if "cdi-spec-dirs" in before:
            new["cdi-spec-dirs"] = before["cdi-spec-dirs"]
        else:
            new.pop("cdi-spec-dirs", None)
        features = new.get("features")
        old_features = before.get("features")
        if isinstance(features, dict):
            if isinstance(old_features, dict) and "cdi" in old_features:
                features["cdi"] = old_features["cdi"]
            else:
                features.pop("cdi", None)
            if not features and "features" not in before:
                del new["features"]
    return _finish(plan, opts, text, data, new, delete_if_empty=created)
