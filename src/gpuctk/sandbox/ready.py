"""Make CDI specs and edited OCI specs runsc-ready (rules and sources in docs/gvisor.md).

* ``runsc_ready_cdi_spec(cdi_spec)`` for ``gpuctk cdi generate --sandbox gvisor``: returns a new spec.
* ``runsc_ready_oci_spec(oci_spec)`` for the shim's ``nvidia-container-runtime.sandbox = "gvisor"``:
  edits the raw dict in place (unknown fields survive).

Both return human-readable warnings naming everything dropped or changed. Stdlib-only.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError
from gpuctk.sandbox import contract as c

_VOID = c.NVD + "=void"


class _Notes:
    """Warnings, aggregated so a 16-device spec gives a few lines, not dozens."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.nodes: dict[str, None] = {}
        self.renamed: dict[tuple[str, str], None] = {}
        self.mig: list[str] = []

    def append(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)

    def render(self) -> list[str]:
        out = []
        if self.mig:
            out.append(f"dropped MIG devices {', '.join(self.mig)}: nvproxy does not support MIG")
        if self.nodes:
            out.append(f"dropped device nodes nvproxy does not back: {', '.join(sorted(self.nodes))}")
        for old, new in self.renamed:
            line = f"hooks now run through {new} (was {old}); runsc recognises that name"
            if not os.path.exists(new):  # the producer may run where the launcher is not installed yet
                line += (
                    " — not present on this host: install the nvidia-cdi-hook launcher there (gpuctk install)"
                )
            out.append(line)
        return out + self.lines


def _cdi_hook_path(original: str, override: str | None) -> str:
    if override:
        return override
    directory = os.path.dirname(original) if original.startswith("/") else ""
    return os.path.join(directory or "/usr/bin", c.CDI_HOOK)


def _rewrite_hooks(hook_list: list, override: str | None, warnings: _Notes) -> list:
    """Toolkit/gpuctk CDI hooks → ``<dir>/nvidia-cdi-hook NAME …``; drop disable-device-node-modification."""
    from gpuctk.generate.hooks import expand_hooks  # gpuctk-hook run-steps -> one hook per step

    out = []
    for h in expand_hooks(hook_list):
        parsed = c.toolkit_hook_name(h) if isinstance(h, dict) else None
        if parsed is None:
            out.append(h)
            continue
        name, rest = parsed
        if name == c.DISABLE_NODE_MOD:
            warnings.append(
                f"dropped the {name} hook (nvproxy already forces ModifyDeviceFiles: 0; "
                "older runsc fails on it, D4)"
            )
            continue
        if name == "create-symlinks":
            rest = _without_dri_links(rest)
            if not any(a.startswith("--link") for a in rest):
                warnings.append(
                    "dropped the /dev/dri/by-path create-symlinks hook (its DRM nodes are dropped)"
                )
                continue
        path = str(h.get("path", ""))
        new = dict(h)
        new["path"] = _cdi_hook_path(path, override)
        new["args"] = [c.CDI_HOOK, name, *rest]
        if new["path"] != path:
            warnings.renamed[(path, new["path"])] = None
        out.append(new)
    return out


def _without_dri_links(args: list[str]) -> list[str]:
    """Drop ``--link TARGET::/dev/dri/…`` pairs: the DRM nodes they point at are not in the sandbox."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--link" and i + 1 < len(args):
            if not args[i + 1].split("::", 1)[-1].startswith("/dev/dri/"):
                out += [a, args[i + 1]]
            i += 2
            continue
        if a.startswith("--link=") and a.split("::", 1)[-1].startswith("/dev/dri/"):
            i += 1
            continue
        out.append(a)
        i += 1
    return out


def _single_void(env: list, warnings: _Notes, where: str) -> list:
    """Exactly one NVIDIA_VISIBLE_DEVICES entry, ``void``, at the first one's position."""
    out: list[object] = []
    replaced = []
    for e in env:
        if isinstance(e, str) and e.startswith(c.NVD + "="):
            replaced.append(e)
            if _VOID not in out:
                out.append(_VOID)
            continue
        out.append(e)
    if not replaced:
        out.append(_VOID)
    elif replaced != [_VOID]:
        warnings.append(
            f"{where}: {', '.join(replaced)} replaced by a single {_VOID} (keeps runsc from also "
            "running nvidia-container-cli, D2)"
        )
    return out


# ---------------------------------------------------------------- CDI specs


def runsc_ready_cdi_spec(cdi_spec: dict, *, cdi_hook_path: str | None = None) -> tuple[dict, list[str]]:
    """A copy of ``cdi_spec`` that passes the runsc + nvproxy contract, and the warnings.

    Drops UNIX-socket mounts, device nodes nvproxy does not back (MIG and IMEX devices entirely),
    and the disable-device-node-modification hook; routes hooks through ``nvidia-cdi-hook``; sets
    one ``NVIDIA_VISIBLE_DEVICES=void`` in the common env. Raises GpuctkError when no device is left.
    """
    import copy  # not on the shim's create path

    spec = copy.deepcopy(cdi_spec)
    warnings = _Notes()
    kept = []
    for dev in c.as_list(spec.get("devices")):
        if not isinstance(dev, dict):
            continue
        name = str(dev.get("name"))
        edits = c.as_dict(dev.get("containerEdits"))
        paths = [str(n.get("path")) for n in c.as_list(edits.get("deviceNodes")) if isinstance(n, dict)]
        mig = [p for p in paths if c.is_mig_cap(p)]
        if mig and name != "all":
            warnings.mig.append(name)
            continue
        _ready_edits(edits, f"device {name}", cdi_hook_path, warnings, common=False)
        if not any(edits.get(k) for k in ("deviceNodes", "mounts", "hooks", "env")):
            warnings.append(f"device {name}: dropped, nothing nvproxy can serve is left")
            continue
        kept.append(dev)
    if not kept:
        raise GpuctkError(
            f"CDI spec {spec.get('kind', '')}: no device nvproxy can serve is left after the gVisor edits"
        )
    spec["devices"] = kept
    common = spec.setdefault("containerEdits", {})
    _ready_edits(common, "containerEdits", cdi_hook_path, warnings, common=True)
    all_paths = [
        str(n.get("path"))
        for e in [common] + [d.get("containerEdits", {}) for d in kept]
        for n in c.as_list(c.as_dict(e).get("deviceNodes"))
        if isinstance(n, dict)
    ]
    if "/dev/nvidiactl" not in all_paths:
        warnings.append(
            "no /dev/nvidiactl in the spec: runsc will see no GPU request on the CDI path (A.8 D1/S2)"
        )
    return spec, warnings.render()


def _ready_edits(edits: dict, where: str, hook_path: str | None, warnings: _Notes, *, common: bool) -> None:
    nodes = [n for n in c.as_list(edits.get("deviceNodes")) if isinstance(n, dict)]
    drop = [
        str(n.get("path"))
        for n in nodes
        if c.is_gpu_related(str(n.get("path"))) and not c.is_backed_by_nvproxy(str(n.get("path")))
    ]
    if drop:
        warnings.nodes.update(dict.fromkeys(drop))
        kept = [n for n in nodes if str(n.get("path")) not in drop]
        edits["deviceNodes"] = kept
        # additionalGids exist for the nodes' groups (video, render): keep only those still needed.
        if "additionalGids" in edits:
            dropped_gids = {n.get("gid") for n in nodes if str(n.get("path")) in drop}
            needed = {n.get("gid") for n in kept}
            edits["additionalGids"] = [
                g for g in c.as_list(edits["additionalGids"]) if g not in dropped_gids or g in needed
            ]
            if not edits["additionalGids"]:
                del edits["additionalGids"]
    mounts = [m for m in c.as_list(edits.get("mounts")) if isinstance(m, dict)]
    sockets = c.socket_mounts(mounts, src_key="hostPath", dst_key="containerPath")
    if sockets:
        warnings.append(
            f"dropped UNIX-socket mounts (C5): {', '.join(str(m.get('containerPath')) for m in sockets)}"
        )
        edits["mounts"] = [m for m in mounts if m not in sockets]
    if "hooks" in edits:
        edits["hooks"] = _rewrite_hooks(c.as_list(edits["hooks"]), hook_path, warnings)
    env = c.as_list(edits.get("env"))
    if common:
        edits["env"] = _single_void(env, warnings, where)
    elif any(isinstance(e, str) and e.startswith(c.NVD + "=") for e in env):
        edits["env"] = [e for e in env if not (isinstance(e, str) and e.startswith(c.NVD + "="))]
        warnings.append(f"{where}: removed its NVIDIA_VISIBLE_DEVICES (the common env holds a single void)")
    for key in ("deviceNodes", "mounts", "hooks", "env"):
        if key in edits and not edits[key] and not common:
            del edits[key]
    for key in ("deviceNodes", "mounts", "hooks"):
        if common and key in edits and not edits[key]:
            del edits[key]


# ---------------------------------------------------------------- OCI specs


def runsc_ready_oci_spec(
    oci_spec: dict, *, cdi_hook_path: str | None = None, legacy_hook_path: str | None = None
) -> list[str]:
    """Edit an OCI spec (after the shim's own edits) in place so runsc + nvproxy accept it.

    CDI/JIT/CSV-edited specs: as ``runsc_ready_cdi_spec`` on the spec itself, plus removal of legacy
    prestart hooks. Legacy-mode specs: the prestart hook becomes the L1 shape
    ``{path: <dir>/nvidia-container-runtime-hook, args: [nvidia-container-runtime-hook, prestart]}``.
    Returns warnings. A spec with no NVIDIA edits is left alone.
    """
    warnings = _Notes()
    paths = [str(d.get("path")) for d in c.devices(oci_spec)]
    cdi_style = any(c.is_gpu_related(p) for p in paths) or any(
        c.toolkit_hook_name(h) is not None for h in c.hooks(oci_spec, "createContainer")
    )
    legacy = [
        h for h in c.hooks(oci_spec, "prestart") if c.is_runsc_legacy_hook(h) or c.is_legacy_hook_alias(h)
    ]
    if not cdi_style and not legacy:
        return []
    process = oci_spec.get("process")
    if isinstance(process, dict) and isinstance(process.get("env"), list):
        bad = c.malformed_env(process["env"])
        if bad:
            process["env"] = [e for e in process["env"] if isinstance(e, str) and not c.malformed_env([e])]
            warnings.append(
                f"process.env: dropped malformed entries {', '.join(bad)} (runsc would read every "
                "variable as unset, C6)"
            )
    if cdi_style:
        _ready_oci_cdi(oci_spec, paths, legacy, cdi_hook_path, warnings)
    elif legacy:
        _ready_oci_legacy(oci_spec, legacy, legacy_hook_path, warnings)
    return warnings.render()


def _ready_oci_cdi(
    spec: dict, paths: list[str], legacy: list[dict], hook_path: str | None, warnings: _Notes
) -> None:
    hooks_obj = c.as_dict(spec.get("hooks"))
    if legacy:
        hooks_obj["prestart"] = [h for h in c.hooks(spec, "prestart") if h not in legacy]
        warnings.append("hooks.prestart: removed the legacy NVIDIA hook (the spec already carries CDI edits)")
    for stage in ("createRuntime", "createContainer", "startContainer"):
        if stage in hooks_obj:
            hooks_obj[stage] = _rewrite_hooks(c.as_list(hooks_obj[stage]), hook_path, warnings)
    linux = c.as_dict(spec.get("linux"))
    drop = [p for p in paths if c.is_gpu_related(p) and not c.is_backed_by_nvproxy(p) and not c.is_mig_cap(p)]
    if drop:
        linux["devices"] = [d for d in c.devices(spec) if str(d.get("path")) not in drop]
        warnings.nodes.update(dict.fromkeys(drop))
    mig = [p for p in paths if c.is_mig_cap(p)]
    if mig:
        warnings.append(
            f"linux.devices: MIG capability nodes {', '.join(mig)} left in place: nvproxy does not "
            "support MIG (the check fails C4)"
        )
    mounts = [m for m in c.as_list(spec.get("mounts")) if isinstance(m, dict)]
    sockets = c.socket_mounts(mounts)
    ipc = [m for m in sockets if c.is_nvidia_ipc(m.get("source")) or c.is_nvidia_ipc(m.get("destination"))]
    if ipc:
        spec["mounts"] = [m for m in mounts if m not in ipc]
        warnings.append(
            f"mounts: dropped NVIDIA IPC socket mounts: {', '.join(str(m.get('destination')) for m in ipc)}"
        )
    others = [m for m in sockets if m not in ipc]
    if others:
        warnings.append(
            f"mounts: {', '.join(str(m.get('destination')) for m in others)} look like UNIX sockets "
            "and were left in place: runsc fails on socket bind mounts unless --host-uds allows them"
        )
    process = spec.get("process")
    if isinstance(process, dict):
        process["env"] = _single_void(c.as_list(process.get("env")), warnings, "process.env")


def _ready_oci_legacy(spec: dict, legacy: list[dict], hook_path: str | None, warnings: _Notes) -> None:
    prestart = c.hooks(spec, "prestart")
    first = legacy[0]
    path = str(first.get("path", ""))
    directory = os.path.dirname(path) if path.startswith("/") else "/usr/bin"
    shaped = {
        "path": hook_path or os.path.join(directory, c.LEGACY_HOOK),
        "args": [c.LEGACY_HOOK, "prestart"],
    }
    if first.get("path") != shaped["path"]:
        warnings.append(
            f"hooks.prestart: legacy hook {path} renamed to {shaped['path']} (runsc recognises only "
            "that name and replays it instead of executing it, L1)"
        )
    new = []
    for h in prestart:
        if h is first:
            new.append(shaped)
        elif h not in legacy:
            new.append(h)
    spec["hooks"]["prestart"] = new
    process = spec.get("process")
    if isinstance(process, dict):
        env = c.as_list(process.get("env"))
        if c.toolkit_env_lookup(env, c.NVD) is None and c.is_legacy_cuda_image(env):
            process["env"] = [*env, c.NVD + "=all"]
            warnings.append(
                "process.env: added NVIDIA_VISIBLE_DEVICES=all, which the toolkit implies for this "
                "legacy CUDA image and runsc needs explicit (L2)"
            )
