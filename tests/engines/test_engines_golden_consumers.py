"""The engine-config goldens checked by sources other than the code that wrote them.

tests/engines/test_engines_golden.py compares `gpuctk runtime configure` output with files that
the same code produced once. Here the same golden files are read

- by upstream's rules, as NVIDIA/nvidia-container-toolkit writes them
  (``pkg/config/engine/containerd/{config,config_v1,config_drop_in}.go``, ``pkg/config/engine/crio/crio.go``,
  ``pkg/config/engine/docker/docker.go``, ``pkg/config/engine/crio/hook.go`` for the OCI hook file), parsed
  with the standard library's TOML/JSON parsers;
- by real containerd (``containerd --config <golden> config dump``) for every config version the
  installed containerd reads (1 and 2: containerd 1.6), with the drop-in beside it through ``imports``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from test_engines_golden import CASES, GOLDEN, INPUTS

from gpuctk.engines.model import ConfigureOptions
from support.tools import require_tool

CRI_PATH = {
    1: ("plugins", "cri"),
    2: ("plugins", "io.containerd.grpc.v1.cri"),
    3: ("plugins", "io.containerd.cri.v1.runtime"),
}


def _golden_files(case: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((GOLDEN / case).iterdir())}


def _main_text(case: str, opts: ConfigureOptions) -> str:
    """The engine's main config after configure: its golden if it changed, else the input (or nothing)."""
    files = _golden_files(case)
    name = os.path.basename(opts.config)
    if name in files:
        return files[name]
    src = CASES[case][0]
    return (INPUTS / src).read_text() if src else ""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


CONTAINERD = sorted(c for c, (_, o) in CASES.items() if o.engine == "containerd")
CRIO = sorted(c for c, (_, o) in CASES.items() if o.engine == "crio" and o.config_mode == "config-file")
DOCKER = sorted(c for c, (_, o) in CASES.items() if o.engine == "docker")


def _containerd_view(case: str) -> tuple[int, dict[str, Any], dict[str, Any], ConfigureOptions]:
    opts = CASES[case][1]
    main = tomllib.loads(_main_text(case, opts))
    drop = _golden_files(case).get(os.path.basename(opts.drop_in)) if opts.drop_in else None
    merged = _merge(main, tomllib.loads(drop)) if drop else main
    version = merged.get("version", 1 if main else 2)
    return version, main, merged, opts


@pytest.mark.parametrize("case", CONTAINERD)
def test_containerd_golden_follows_upstream_rules(case: str) -> None:
    version, main, merged, opts = _containerd_view(case)
    cri = _dig(merged, *CRI_PATH[min(version, 3)])
    assert isinstance(cri, dict), f"{case}: no CRI plugin table for config version {version}"
    runtime = _dig(cri, "containerd", "runtimes", opts.runtime_name)
    assert isinstance(runtime, dict), f"{case}: no runtimes.{opts.runtime_name}"
    assert runtime.get("runtime_type"), f"{case}: runtime_type missing"
    if not opts.low_level_runtime:
        assert runtime["runtime_type"] == _base_runtime_type(case, version)
        assert runtime["options"]["BinaryName"] == opts.runtime_path
        if version == 1:
            assert runtime["options"]["Runtime"] == opts.runtime_path
    default = _dig(cri, "containerd", "default_runtime_name")
    if opts.set_as_default:
        assert default == opts.runtime_name
    else:
        assert default != opts.runtime_name
    # v1: gpuctk writes plugins.cri.enable_cdi, where containerd reads it; upstream writes
    # plugins.cri.containerd.enable_cdi (a listed difference, docs/engines.md)
    cdi = cri.get("enable_cdi")
    assert bool(cdi) is opts.enable_cdi or (cdi is True and not opts.enable_cdi and _input_had_cdi(case))
    if opts.drop_in and version >= 2:
        assert f"{os.path.dirname(opts.drop_in)}/*.toml" in main.get("imports", [])


def _base_runtime_type(case: str, version: int) -> str:
    """Upstream copies the entry of the default runtime (unless it is an nvidia one), else runc,
    else crun, and fills ``io.containerd.runc.v2`` only where there is none."""
    src = CASES[case][0]
    cri = _dig(tomllib.loads((INPUTS / src).read_text()), *CRI_PATH[min(version, 3)]) if src else None
    runtimes = _dig(cri, "containerd", "runtimes") or {}
    default = _dig(cri, "containerd", "default_runtime_name") or ""
    for name in ([] if default.startswith("nvidia") else [default]) + ["runc", "crun"]:
        if isinstance(runtimes.get(name), dict) and runtimes[name].get("runtime_type"):
            return str(runtimes[name]["runtime_type"])
    return "io.containerd.runc.v2"


def _input_had_cdi(case: str) -> bool:
    src = CASES[case][0]
    return bool(src) and "enable_cdi = true" in (INPUTS / src).read_text()


@pytest.mark.parametrize("case", [c for c in CONTAINERD if _containerd_view(c)[0] <= 2])
def test_containerd_reads_the_golden_config(case: str, tmp_path: Path) -> None:
    containerd = require_tool("containerd")
    _, _, _, opts = _containerd_view(case)
    files = _golden_files(case)
    main = _main_text(case, opts)
    if opts.drop_in:
        drop_dir = tmp_path / "conf.d"
        drop_dir.mkdir()
        main = main.replace(f"{os.path.dirname(opts.drop_in)}/*.toml", f"{drop_dir}/*.toml")
        if os.path.basename(opts.drop_in) in files:
            (drop_dir / os.path.basename(opts.drop_in)).write_text(files[os.path.basename(opts.drop_in)])
    conf = tmp_path / "config.toml"
    conf.write_text(main)
    p = subprocess.run(
        [containerd, "--config", str(conf), "config", "dump"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    dump = tomllib.loads(p.stdout)
    cri = dump["plugins"]["io.containerd.grpc.v1.cri"]
    runtime = cri["containerd"]["runtimes"][opts.runtime_name]
    if not opts.low_level_runtime:
        assert runtime["runtime_type"] == _base_runtime_type(case, _containerd_view(case)[0])
        assert runtime["options"]["BinaryName"] == opts.runtime_path
    if opts.set_as_default:
        assert cri["containerd"]["default_runtime_name"] == opts.runtime_name
    if opts.enable_cdi and "enable_cdi" in cri:  # containerd 1.6 has no enable_cdi (1.7 added it)
        assert cri["enable_cdi"] is True


@pytest.mark.parametrize("case", CRIO)
def test_crio_golden_follows_upstream_rules(case: str) -> None:
    opts = CASES[case][1]
    files = _golden_files(case)
    main = tomllib.loads(_main_text(case, opts))
    drop = files.get(os.path.basename(opts.drop_in)) if opts.drop_in else None
    merged = _merge(main, tomllib.loads(drop)) if drop else main
    runtime = _dig(merged, "crio", "runtime", "runtimes", opts.runtime_name)
    assert runtime["runtime_path"] == opts.runtime_path
    assert runtime["runtime_type"] == "oci"
    default = _dig(merged, "crio", "runtime", "default_runtime")
    assert (default == opts.runtime_name) is opts.set_as_default


def test_crio_oci_hook_golden_is_a_podman_hook_file() -> None:
    opts = CASES["crio-oci-hook"][1]
    (text,) = _golden_files("crio-oci-hook").values()
    hook = json.loads(text)
    assert hook["version"] == "1.0.0"
    assert hook["hook"]["path"] == opts.hook_path
    assert hook["hook"]["args"] == [os.path.basename(opts.hook_path), "prestart"]
    assert hook["when"] == {"always": True, "commands": [".*"]}
    assert hook["stages"] == ["prestart"]
    assert any(e.startswith("PATH=") for e in hook["hook"]["env"])


@pytest.mark.parametrize("case", DOCKER)
def test_docker_golden_follows_upstream_rules(case: str) -> None:
    opts = CASES[case][1]
    (text,) = _golden_files(case).values()
    if (
        CASES[case][0] is None
    ):  # a new file: upstream's 4 spaces (an existing file keeps its own, docs/engines.md)
        assert text.startswith('{\n    "'), "upstream indents daemon.json with 4 spaces"
    daemon = json.loads(text)
    assert daemon["runtimes"][opts.runtime_name]["path"] == opts.runtime_path
    assert (daemon.get("default-runtime") == opts.runtime_name) is opts.set_as_default
    assert (_dig(daemon, "features", "cdi") is True) is opts.enable_cdi
