"""``gpuctk doctor``: the snapshot's facts turned into pass/warn/fail lines, each with a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GENERATE_FIX = "gpuctk cdi generate --output /etc/cdi/nvidia.yaml"


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _driver(snap: dict[str, Any]) -> list[Check]:
    gpu = snap.get("gpu") or {}
    if not gpu.get("available"):
        return [
            Check(
                "driver",
                "fail",
                f"NVIDIA driver not usable: {gpu.get('error', 'nvidia-smi failed')}",
                "install the NVIDIA driver (or the GPU Operator's driver container) and check that "
                "`nvidia-smi` works on the host",
            )
        ]
    checks = [
        Check(
            "driver",
            "pass",
            f"driver {gpu.get('driver_version')} (CUDA {gpu.get('cuda_version')}), "
            f"{gpu.get('count', 0)} GPU(s)",
        )
    ]
    if gpu.get("count", 0) == 0:
        checks[0] = Check(
            "driver",
            "fail",
            "nvidia-smi reports no GPUs",
            "check `nvidia-smi -L`, the kernel log (dmesg | grep -i nvrm) and that the GPUs are not "
            "bound to vfio-pci",
        )
    off = [
        str(g.get("index")) for g in gpu.get("gpus") or [] if (g.get("persistence_mode") or "") == "Disabled"
    ]
    if off:
        checks.append(
            Check(
                "persistence-mode",
                "warn",
                f"persistence mode off on GPU(s) {', '.join(off)}",
                "enable nvidia-persistenced (systemctl enable --now nvidia-persistenced) or run "
                "`nvidia-smi -pm 1`",
            )
        )
    elif gpu.get("gpus"):
        checks.append(Check("persistence-mode", "pass", "persistence mode on for every GPU"))
    return checks


def _specs(snap: dict[str, Any]) -> list[Check]:
    cdi = snap.get("cdi") or {}
    specs = cdi.get("specs") or []
    driver_ok = (snap.get("gpu") or {}).get("available")
    if not specs:
        status = "warn" if driver_ok else "pass"
        return [
            Check(
                "cdi-specs",
                status,
                f"no CDI specs in {', '.join(cdi.get('spec_dirs') or [])}",
                GENERATE_FIX if driver_ok else "",
            )
        ]
    out = []
    for s in specs:
        if s.get("valid") is False:
            out.append(
                Check(
                    "cdi-spec",
                    "fail",
                    f"{s['path']} is invalid: {'; '.join(s.get('errors') or [])}",
                    f"regenerate it: {GENERATE_FIX.replace('/etc/cdi/nvidia.yaml', s['path'])}",
                )
            )
        elif s.get("stale"):
            out.append(
                Check(
                    "cdi-spec",
                    "fail",
                    f"{s['path']} is stale: {'; '.join(s.get('stale_reasons') or [])}",
                    f"regenerate it after driver changes: "
                    f"{GENERATE_FIX.replace('/etc/cdi/nvidia.yaml', s['path'])}",
                )
            )
        else:
            out.append(
                Check(
                    "cdi-spec",
                    "pass",
                    f"{s['path']} ({s.get('kind')}, {len(s.get('devices') or [])} devices) matches the node",
                )
            )
    return out


def _engines(snap: dict[str, Any]) -> list[Check]:
    out = []
    engines = snap.get("engines") or []
    if not engines:
        return [
            Check(
                "engine",
                "warn",
                "no container engine found (containerd, CRI-O or Docker)",
                "install a container engine, or pass --runtime to say which one to check",
            )
        ]
    for e in engines:
        name = e.get("engine", "?")
        if e.get("error"):
            out.append(Check(f"engine-{name}", "warn", e["error"], ""))
            continue
        rec = e.get("recommendation") or {}
        ver = e.get("version") or "(version unknown)"
        if e.get("cdi_supported"):
            if e.get("cdi_enabled"):
                out.append(Check(f"cdi-{name}", "pass", f"{name} {ver}: CDI enabled"))
            else:
                out.append(
                    Check(
                        f"cdi-{name}",
                        "fail",
                        f"{name} {ver} supports CDI but it is disabled (CDI devices are silently dropped)",
                        rec.get("command") or f"gpuctk runtime configure --runtime {name} --enable-cdi",
                    )
                )
            if not e.get("gpu_runtime_configured"):
                out.append(
                    Check(
                        f"gpu-runtime-{name}",
                        "warn",
                        f"{name}: no GPU runtime handler configured (needed for management-only pods "
                        "with runtimeClassName)",
                        f"gpuctk runtime configure --runtime {name}",
                    )
                )
            else:
                out.append(
                    Check(
                        f"gpu-runtime-{name}",
                        "pass",
                        f"{name}: GPU runtime(s) {', '.join(e.get('gpu_runtimes') or [])} configured",
                    )
                )
        else:
            if not e.get("gpu_runtime_configured"):
                out.append(
                    Check(
                        f"gpu-runtime-{name}",
                        "fail",
                        f"{name} {ver} has no native CDI and no GPU runtime configured: containers get "
                        "no GPU",
                        rec.get("command") or f"gpuctk runtime configure --runtime {name} --set-as-default",
                    )
                )
            else:
                out.append(
                    Check(
                        f"gpu-runtime-{name}",
                        "pass",
                        f"{name} {ver}: GPU runtime {', '.join(e.get('gpu_runtimes') or [])} configured "
                        "(no native CDI)",
                    )
                )
    return out


def _decision(snap: dict[str, Any]) -> list[Check]:
    """The decision ``--cdi auto`` recorded, checked against the engine as it is now (read
    instead of deciding again: a record is what this node was set up to do)."""
    rec = snap.get("cdi_decision")
    if not rec:
        return []
    if rec.get("error"):
        return [Check("cdi-decision", "warn", rec["error"], "gpuctk install --cdi auto (writes it again)")]
    d = rec.get("decision") or {}
    name = str(rec.get("engine") or "?")
    fix = f"gpuctk runtime configure --runtime {name} --cdi auto"
    what = f"recorded decision {d.get('path')} (row {d.get('row')})"
    e = next((x for x in snap.get("engines") or [] if x.get("engine") == name and not x.get("error")), None)
    if e is None:
        return [Check("cdi-decision", "warn", f"{what} is for {name}, which this snapshot did not find", "")]
    out: list[Check] = []
    if rec.get("engine_version") and e.get("version") and rec["engine_version"] != e["version"]:
        out.append(
            Check(
                "cdi-decision",
                "warn",
                f"{what} was made for {name} {rec['engine_version']}, the engine is now {e['version']}",
                fix + " (decide again for this version)",
            )
        )
    problems = []
    if d.get("nvidia_default") and not e.get("gpu_runtime_default"):
        problems.append(f"the nvidia runtime is not the default (default {e.get('default_runtime')!r})")
    if d.get("nvidia_default") is False and e.get("gpu_runtime_default"):
        problems.append(
            f"{e.get('default_runtime')!r} is the default runtime but the decision keeps the engine's"
        )
    if d.get("path") == "native" and d.get("engine_edits", True) and not e.get("cdi_enabled"):
        problems.append("CDI is not enabled in the engine")
    if d.get("path") != "native" and d.get("row") != 7 and not e.get("gpu_runtime_configured"):
        problems.append("no GPU runtime is configured")
    if problems:
        out.append(Check("cdi-decision", "fail", f"{what}: " + "; ".join(problems), fix))
    elif not out:
        why = "; ".join(d.get("reasons") or [])
        out.append(Check("cdi-decision", "pass", f"{what} applied to {name} {e.get('version')}: {why}"))
    return out


def _dev_char(snap: dict[str, Any]) -> list[Check]:
    dc = snap.get("dev_char") or {}
    missing = dc.get("missing") or []
    if missing:
        shown = ", ".join(f"{m['link']} -> {m['device']}" for m in missing[:4])
        return [
            Check(
                "dev-char-links",
                "warn",
                f"{len(missing)} /dev/char link(s) missing: {shown}",
                "gpuctk system create-dev-char-symlinks (without them a systemd "
                "daemon-reload can cut containers off their GPUs)",
            )
        ]
    if dc.get("checked"):
        return [
            Check("dev-char-links", "pass", f"/dev/char links present for {dc['checked']} NVIDIA device(s)")
        ]
    return []


# (dotted section, JSON type, type of its items) for what the checks read
_SHAPE: tuple[tuple[str, type, type | None], ...] = (
    ("gpu", dict, None),
    ("gpu.gpus", list, dict),
    ("cdi", dict, None),
    ("cdi.specs", list, dict),
    ("engines", list, dict),
    ("dev_char", dict, None),
    ("dev_char.missing", list, dict),
    ("cdi_decision", dict, None),
    ("cdi_decision.decision", dict, None),
)
_TYPE_NAMES: dict[type, str] = {dict: "a mapping", list: "a list"}


def check_shape(snap: object, source: str) -> None:
    """GpuctkError naming the file and field unless a (saved, maybe hand-edited) snapshot has the
    types the checks read; null means absent."""
    from gpuctk.errors import GpuctkError

    if not isinstance(snap, dict) or snap.get("kind") != "GpuctkSnapshot":
        raise GpuctkError(f"{source}: kind: not a gpuctk snapshot (kind GpuctkSnapshot)")
    for field, want, item in _SHAPE:
        value: Any = snap
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if not isinstance(value, want):
            raise GpuctkError(f"{source}: {field}: expected {_TYPE_NAMES[want]}")
        if item is None:
            continue
        items: list[Any] = value  # type: ignore[assignment]  # isinstance(value, list) above
        for i, v in enumerate(items):
            if not isinstance(v, item):
                raise GpuctkError(f"{source}: {field}[{i}]: expected {_TYPE_NAMES[item]}")
    for i, e in enumerate(snap.get("engines") or ()):
        for key, want in (("recommendation", dict), ("gpu_runtimes", list)):
            if e.get(key) is not None and not isinstance(e[key], want):
                raise GpuctkError(f"{source}: engines[{i}].{key}: expected {_TYPE_NAMES[want]}")
    for i, m in enumerate((snap.get("dev_char") or {}).get("missing") or ()):
        for key in ("link", "device"):
            if not isinstance(m.get(key), str):
                raise GpuctkError(f"{source}: dev_char.missing[{i}].{key}: expected a string")


def run_checks(snap: dict[str, Any]) -> list[Check]:
    return _driver(snap) + _specs(snap) + _engines(snap) + _decision(snap) + _dev_char(snap)


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{c.status.upper():4}] {c.name}: {c.message}")
        if c.fix and c.status != "pass":
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines) + "\n"


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0
