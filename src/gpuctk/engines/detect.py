"""Detect the node's container engine, its CDI support and its GPU-runtime configuration.

The facts come from the engine binary (``--version``), its effective configuration
(``containerd config dump`` when the binary is there, else the config file plus its
imports/drop-ins) and the version rules of :mod:`gpuctk.engines.versions`;
:func:`gpuctk.engines.decision.decide` turns them into the injection path (the same
function ``k8s plan`` uses). External commands go through a swappable
``run`` callable so tests can replay captured outputs.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from typing import Any

from gpuctk.engines.decision import Decision, EngineFacts, decide
from gpuctk.engines.dicts import deep_merge, table
from gpuctk.engines.model import DEFAULT_CONFIG, ENGINES
from gpuctk.engines.versions import Version, cdi_support, format_version, parse_runtime_version, parse_version
from gpuctk.errors import GpuctkError
from gpuctk.fileio import check_toml_shape, decode_json, decode_utf8, escape_controls, read_regular

Runner = Callable[[list[str]], "tuple[int, str]"]
DEFAULT_SPEC_DIRS = ["/etc/cdi", "/var/run/cdi"]
BINARIES = {"containerd": "containerd", "crio": "crio", "docker": "dockerd"}
GPU_RUNTIME_BINARIES = ("nvidia-container-runtime", "gpuctk-runtime")
CRI_TABLES = ("io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri", "cri")


def run_command(argv: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return p.returncode, p.stdout if p.returncode == 0 else p.stderr


def _which(name: str) -> str | None:
    return shutil.which(
        name, path=os.environ.get("PATH", "") + ":/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin"
    )


def guess_engine() -> str:
    for engine in ENGINES:
        if _which(BINARIES[engine]) or os.path.exists(DEFAULT_CONFIG[engine]):
            return engine
    raise GpuctkError("no container engine found (containerd, crio or dockerd); pass --runtime")


def is_gpu_binary(path: Any) -> bool:
    return isinstance(path, str) and os.path.basename(path).startswith(GPU_RUNTIME_BINARIES)


# ------------------------------------------------------------------ per-engine config facts
def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError) and "4300 digits" in str(exc):  # CPython's int digit limit
        return "an integer with more than 4300 digits"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _cannot_read(name: str, exc: GpuctkError) -> GpuctkError:
    """``NAME: REASON`` from a shared checker as ``NAME: cannot read engine config: REASON``."""
    return GpuctkError(f"{name}: cannot read engine config: {str(exc).removeprefix(name + ': ')}")


def _read(path: str) -> str | None:
    """The text of engine config ``path`` (None: it does not exist): a regular file only (a FIFO
    without a writer or a device is refused without blocking, the type checked on the open
    descriptor), at most the size `runtime configure` reads, UTF-8 without NUL bytes."""
    from gpuctk.engines.apply import MAX_ENGINE_CONFIG_BYTES

    try:
        data = read_regular(path, MAX_ENGINE_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GpuctkError(f"{escape_controls(path)}: cannot read engine config: {_reason(exc)}") from None
    return decode_utf8(data, escape_controls(path), "engine config")


def _load_toml(path: str) -> dict[str, Any]:
    text = _read(path)
    if text is None:
        return {}
    name = escape_controls(path)
    try:
        check_toml_shape(text, name)  # tomllib is slow on pathological shapes
    except GpuctkError as exc:
        raise _cannot_read(name, exc) from None
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, CPython's int digit limit
        raise GpuctkError(f"{name}: cannot read engine config: {escape_controls(_reason(exc))}") from None


def containerd_file_config(path: str) -> dict[str, Any]:
    """The config file merged with its ``imports`` (a key-wise merge, good enough to read facts)."""
    data = _load_toml(path)
    imports = data.get("imports")
    for pattern in imports if isinstance(imports, list) else []:
        if not isinstance(pattern, str):
            continue
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(path), pattern)
        for imp in sorted(glob.glob(pattern)):
            deep_merge(data, _load_toml(imp))
    return data


def _str_list(value: Any, default: list[str]) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) and value else list(default)


def _name(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def containerd_facts(cfg: dict[str, Any]) -> dict[str, Any]:
    plugins = table(cfg.get("plugins"))
    cri: dict[str, Any] = {}
    for name in CRI_TABLES:
        if isinstance(plugins.get(name), dict):
            cri = plugins[name]
            break
    ctd = table(cri.get("containerd"))
    runtimes = table(ctd.get("runtimes"))
    gpu = []
    for name, entry in runtimes.items():
        if not isinstance(entry, dict):
            continue
        opts = table(entry.get("options"))
        binary = opts.get("BinaryName") or opts.get("Runtime")
        if is_gpu_binary(binary) or (
            entry.get("runtime_type") == "io.containerd.runsc.v1" and name.startswith("nvidia")
        ):
            gpu.append(name)
    return {
        "cdi_enabled_in_config": cri.get("enable_cdi"),
        "spec_dirs": _str_list(cri.get("cdi_spec_dirs"), DEFAULT_SPEC_DIRS),
        "runtimes": sorted(runtimes),
        "gpu_runtimes": sorted(gpu),
        "default_runtime": _name(ctd.get("default_runtime_name"), "runc"),
    }


def crio_facts(cfg: dict[str, Any]) -> dict[str, Any]:
    rt = table(table(cfg.get("crio")).get("runtime"))
    runtimes = table(rt.get("runtimes"))
    gpu = sorted(
        n for n, e in runtimes.items() if isinstance(e, dict) and is_gpu_binary(e.get("runtime_path"))
    )
    return {
        "cdi_enabled_in_config": None,
        "spec_dirs": _str_list(rt.get("cdi_spec_dirs"), DEFAULT_SPEC_DIRS),
        "runtimes": sorted(runtimes),
        "gpu_runtimes": gpu,
        "default_runtime": _name(rt.get("default_runtime"), "crun"),
    }


def docker_facts(cfg: dict[str, Any]) -> dict[str, Any]:
    runtimes = table(cfg.get("runtimes"))
    gpu = sorted(n for n, e in runtimes.items() if isinstance(e, dict) and is_gpu_binary(e.get("path")))
    return {
        "cdi_enabled_in_config": table(cfg.get("features")).get("cdi"),
        "spec_dirs": _str_list(cfg.get("cdi-spec-dirs"), DEFAULT_SPEC_DIRS),
        "runtimes": sorted({"runc", *runtimes}),
        "gpu_runtimes": gpu,
        "default_runtime": _name(cfg.get("default-runtime"), "runc"),
    }


def _crio_file_config(path: str) -> dict[str, Any]:
    data = _load_toml(path)
    for dropin in sorted(
        glob.glob(os.path.join(os.path.dirname(path), "crio.conf.d", "*.conf"))
        + glob.glob(os.path.join(os.path.dirname(path), "crio.conf.d", "*.toml"))
    ):
        deep_merge(data, _load_toml(dropin))
    return data


def _docker_file_config(path: str) -> dict[str, Any]:
    text = _read(path)
    if text is None:
        return {}
    name = escape_controls(path)
    try:  # syntax, depth, integer digits, lone surrogates: as `runtime configure` reads it
        data = decode_json(text, name) if text.strip() else {}
    except GpuctkError as exc:
        raise _cannot_read(name, exc) from None
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------ detect
def detect(runtime: str | None = None, **paths: Any) -> dict[str, Any]:
    """Facts about one engine. Keyword overrides: ``config`` (config path), ``executable``
    (engine binary), ``version`` (a version string instead of asking the binary),
    ``dump`` (False: never run ``containerd config dump``), ``run`` (command runner)."""
    engine = runtime or guess_engine()
    if engine not in ENGINES:
        raise GpuctkError(f"unknown runtime {engine!r} (containerd, crio or docker)", exit_code=2)
    run: Runner = paths.get("run") or run_command
    config_path: str = paths.get("config") or DEFAULT_CONFIG[engine]
    exe: str | None = paths.get("executable") or _which(BINARIES[engine])
    version_string: str = paths.get("version") or ""
    notes: list[str] = []
    if not version_string and exe:
        rc, out = run([exe, "--version"])
        if rc == 0:
            version_string = out.strip().splitlines()[0] if out.strip() else ""
        else:
            notes.append(f"{exe} --version failed: {out.strip()[:200]}")
    _, version = parse_runtime_version(version_string) if version_string else ("", None)
    if version is None and version_string:
        version = parse_version(version_string)

    source = "file"
    if engine == "containerd":
        cfg: dict[str, Any] | None = None
        if exe and paths.get("dump", True):
            args = [exe, "config", "dump"]
            if _read(config_path) is not None:  # a FIFO or device: refused here, never handed on
                args = [exe, "--config", config_path, "config", "dump"]
            rc, out = run(args)
            if rc == 0:
                try:
                    cfg, source = tomllib.loads(out), "containerd config dump"
                except tomllib.TOMLDecodeError:
                    notes.append("containerd config dump printed invalid TOML; reading the file")
            else:
                notes.append(f"containerd config dump failed: {out.strip()[:200]}")
        if cfg is None:
            cfg = containerd_file_config(config_path)
        facts = containerd_facts(cfg)
    elif engine == "crio":
        facts = crio_facts(_crio_file_config(config_path))
    else:
        facts = docker_facts(_docker_file_config(config_path))
    return assemble(engine, version, version_string, facts, source=source, config=config_path, notes=notes)


def assemble(
    engine: str,
    version: Version | None,
    version_string: str,
    facts: dict[str, Any],
    *,
    source: str = "file",
    config: str = "",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Combine version rules and config facts into the report (pure; used by tests)."""
    support = cdi_support(engine, version)
    in_config = facts.get("cdi_enabled_in_config")
    if not support["native_cdi"]:
        enabled = False
    elif support["needs_enable_cdi"]:
        enabled = bool(in_config)
    else:
        enabled = in_config is not False  # on by default unless turned off
    report = {
        "engine": engine,
        "version": format_version(version) if version else None,
        "version_string": version_string,
        "config": config,
        "config_source": source,
        "cdi_enabled_in_config": in_config if isinstance(in_config, bool) else None,
        "cdi_supported": support["native_cdi"],
        "cdi_enabled": enabled,
        "cdi_needs_enable": support["needs_enable_cdi"],
        "cdi_reason": support["reason"],
        # an engine without native CDI reads no spec dirs (the GPU runtime reads its own)
        "spec_dirs": facts.get("spec_dirs", DEFAULT_SPEC_DIRS) if support["native_cdi"] else [],
        "runtimes": facts.get("runtimes", []),
        "default_runtime": facts.get("default_runtime"),
        "gpu_runtimes": facts.get("gpu_runtimes", []),
        "gpu_runtime_configured": bool(facts.get("gpu_runtimes")),
        "gpu_runtime_default": facts.get("default_runtime") in (facts.get("gpu_runtimes") or []),
        "notes": list(notes or []),
    }
    default = facts.get("default_runtime")
    if engine == "containerd" and facts.get("runtimes") and default not in facts["runtimes"]:
        # containerd < 2.0 with a drop-in that replaced the CRI table without the default's entry
        report["notes"].append(
            f"default_runtime_name {default!r} has no entry in containerd.runtimes: the CRI plugin "
            "will not load and every pod fails; run `gpuctk runtime configure` again (it keeps the "
            "default runtime's entry in the drop-in) or add the entry"
        )
    d = decide(EngineFacts(engine, version, cdi_in_config=in_config if isinstance(in_config, bool) else None))
    report["decision"] = d.path
    report["recommendation"] = recommend(report, d)
    return report


MODES = {
    "native": "native-cdi",
    "nvidia-runtime-cdi": "gpu-runtime-cdi",
    "legacy": "legacy",
    "undecided": "undecided",
}


def configure_command(engine: str, d: Decision) -> str:
    """The complete ``gpuctk runtime configure`` command that applies ``d`` (what
    ``--cdi auto`` does in one go)."""
    flags = ["--runtime", engine]
    if d.nvidia_default:
        flags.append("--set-as-default")
    if d.enable_cdi:
        flags.append("--enable-cdi")
    for glob_ in d.container_annotations:
        flags += ["--cdi-annotation-prefix", glob_.rstrip("*")]
    if engine == "crio" and d.path == "legacy":
        flags += ["--config-mode", "oci-hook"]
    return "gpuctk runtime configure " + " ".join(flags)


def recommend(report: dict[str, Any], d: Decision) -> dict[str, Any]:
    """What gpuctk recommends for this engine: the decision of :func:`decision.decide`
    with the command and the steps still missing on this node."""
    engine = report["engine"]
    steps: list[str] = []
    if d.path == "undecided":
        return {
            "mode": MODES[d.path],
            "set_as_default": False,
            "annotation_prefix": None,
            "runtime_mode": None,
            "command": "",
            "steps": ["find the engine's version (pass --engine-version)"],
            "text": "; ".join(d.reasons),
            "decision": d.as_dict(),
        }
    if d.enable_cdi and not report["cdi_enabled"]:
        steps.append("turn CDI on in the engine (enable_cdi / features.cdi)")
    if not report["gpu_runtime_configured"]:
        steps.append("add the GPU runtime")
    if d.nvidia_default and not report["gpu_runtime_default"]:
        steps.append("make the GPU runtime the default")
    if not d.nvidia_default and report["gpu_runtime_default"]:
        steps.append(f"stop using {report['default_runtime']!r} as the default runtime")
    if d.shim_mode == "cdi" and d.path == "nvidia-runtime-cdi":
        steps.append(
            'set nvidia-container-runtime.mode = "cdi" and modes.cdi.annotation-prefixes = '
            f"{d.annotation_prefixes!r} in config.toml (gpuctk install --cdi auto does both)".replace(
                "'", '"'
            )
        )
    text = {
        "native": f"{engine} injects CDI devices itself: keep its default runtime, request devices through "
        "the CRI CDI field or `cdi.k8s.io/` annotations (device plugin "
        f"{','.join(d.device_list_strategy)}); the nvidia runtime stays available as a RuntimeClass for "
        "management access.",
        "nvidia-runtime-cdi": f"{engine} {report['version']} has no native CDI: make the GPU runtime the "
        "default, run it in cdi mode, and request devices with `nvidia.cdi.k8s.io/` annotations (device "
        "plugin envvar,cdi-annotations, cdiAnnotationPrefix nvidia.cdi.k8s.io/).",
        "legacy": f"{engine} {report['version']}: the GPU runtime injects from NVIDIA_VISIBLE_DEVICES"
        + (" through the OCI prestart hook" if engine == "crio" else " (runtime nvidia, not the default)")
        + ".",
    }[d.path]
    return {
        "mode": MODES[d.path],
        "set_as_default": d.nvidia_default,
        "annotation_prefix": d.cdi_annotation_prefix,
        "runtime_mode": d.shim_mode,
        "command": configure_command(engine, d),
        "auto_command": f"gpuctk runtime configure --runtime {engine} --cdi auto",
        "steps": steps,
        "text": text,
        "decision": d.as_dict(),
    }


def render_text(report: dict[str, Any]) -> str:
    yes = {True: "yes", False: "no", None: "unknown"}
    rec = report["recommendation"]
    lines = [
        f"engine:               {report['engine']} {report['version'] or '(version unknown)'}",
        f"config:               {report['config']} (read from {report['config_source']})",
        f"native CDI supported: {yes[report['cdi_supported']]} - {report['cdi_reason']}",
        f"CDI enabled:          {yes[report['cdi_enabled']]}",
        f"CDI spec dirs:        {', '.join(report['spec_dirs']) or '-'}",
        f"runtimes:             {', '.join(report['runtimes']) or '-'} (default {report['default_runtime']})",
        f"GPU runtime:          {', '.join(report['gpu_runtimes']) or 'not configured'}"
        + (" (default)" if report["gpu_runtime_default"] else ""),
        f"recommendation:       {rec['mode']}, annotation prefix {rec['annotation_prefix'] or '-'}",
        f"  {rec['text']}",
    ]
    if rec["command"]:
        lines += [f"  run: {rec['command']}", f"   or: {rec['auto_command']}"]
    lines += [f"  because: {r}" for r in rec["decision"]["reasons"]]
    lines += [f"  - {s}" for s in rec["steps"]]
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"
