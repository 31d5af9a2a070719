"""`runtime configure --cdi auto` on each fixture version: the decision is applied in one run,
recorded, shown by --dry-run, and undone by --uninstall (original bytes)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gpuctk.cli.main import main

DEFAULTS = Path(__file__).resolve().parents[1] / "data" / "engines" / "containerd-default"

# fixture (None: no file), engine version -> (path, default runtime, enable_cdi in drop-in, annotations)
CASES: dict[str, tuple[str | None, str, str, str, Any, list[str]]] = {
    "1.6-no-file": (None, "1.6.20", "nvidia-runtime-cdi", "nvidia", None, ["nvidia.cdi.k8s.io/*"]),
    "1.7.34": ("config-default-v1.7.34.toml", "1.7.34", "native", "runc", True, []),
    "2.0.11": ("config-default-v2.0.11.toml", "2.0.11", "native", "runc", None, []),
    "2.3.4": ("config-default-v2.3.4.toml", "2.3.4", "native", "runc", None, []),
}


def _cri(doc: dict[str, Any]) -> dict[str, Any]:
    plugins = doc.get("plugins", {})
    return plugins.get("io.containerd.grpc.v1.cri") or plugins.get("io.containerd.cri.v1.runtime") or {}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cdi_auto(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    fixture, version, path, default, enable, annotations = CASES[case]
    cfg = tmp_path / "config.toml"
    original = (DEFAULTS / fixture).read_text() if fixture else None
    if original is not None:
        cfg.write_text(original)
    drop = tmp_path / "conf.d" / "99-nvidia.toml"
    status = tmp_path / "decision.json"
    argv = ["runtime", "configure", "--runtime", "containerd", "--config", str(cfg)]
    argv += ["--drop-in-config", str(drop), "--engine-version", version, "--status-file", str(status)]

    assert main([*argv, "--cdi", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"decision: {path}" in out and "because: " in out and "+++ " in out
    assert not drop.exists() and not status.exists()

    assert main([*argv, "--cdi", "auto"]) == 0
    record = json.loads(status.read_text())
    assert record["decision"]["path"] == path and record["engine_version"] == version
    cri = _cri(tomllib.loads(drop.read_text()))
    assert cri.get("containerd", {}).get("default_runtime_name", "runc") == default
    assert cri.get("enable_cdi") is enable
    assert cri["containerd"]["runtimes"]["nvidia"].get("container_annotations", []) == annotations

    assert main([*argv, "--uninstall"]) == 0
    assert not status.exists() and not drop.exists()
    assert (cfg.read_text() if cfg.exists() else None) == original


def test_cdi_auto_refuses_an_unknown_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--config",
        str(tmp_path / "crio.conf"),
        "--cdi",
        "auto",
    ]
    assert main([*argv, "--executable", str(tmp_path / "no-such-crio")]) == 1
    assert "--version" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cdi_auto_docker_25_turns_features_cdi_on(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    argv = ["runtime", "configure", "--runtime", "docker", "--config", str(cfg), "--engine-version", "25.0.3"]
    assert main([*argv, "--cdi", "auto", "--status-file", str(tmp_path / "s.json")]) == 0
    data = json.loads(cfg.read_text())
    assert data["features"] == {"cdi": True} and "default-runtime" not in data
