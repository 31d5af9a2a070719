"""Version parsing, the engines' CDI version rules, and `gpuctk runtime detect`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuctk.cli.main import main
from gpuctk.engines.detect import assemble, containerd_facts, detect
from gpuctk.engines.versions import cdi_support, parse_runtime_version, parse_version
from support.tools import require_tool

INPUTS = Path(__file__).resolve().parents[1] / "data" / "engines" / "inputs"


@pytest.mark.parametrize(
    "text,engine,version",
    [
        ("containerd://1.7.12-0ubuntu2~22.04.1", "containerd", (1, 7, 12)),
        ("1.7.11-k3s2", "containerd", (1, 7, 11)),
        ("containerd://2.0.1", "containerd", (2, 0, 1)),
        ("containerd://1.6.30", "containerd", (1, 6, 30)),
        ("containerd://v1.7.2", "containerd", (1, 7, 2)),
        ("containerd://2.0.0-rc.3", "containerd", (2, 0, 0)),
        ("containerd://1.7", "containerd", (1, 7, 0)),
        ("cri-o://1.29.1", "crio", (1, 29, 1)),
        ("cri-o://1.23.2-rhaos4.10", "crio", (1, 23, 2)),
        ("docker://24.0.7", "docker", (24, 0, 7)),
        ("Docker version 24.0.7, build afdd53b", "docker", (24, 0, 7)),
        (
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3",
            "containerd",
            (1, 6, 20),
        ),
        (
            "containerd containerd.io 1.7.25 bcc810d6b9066471b0b6fa75f557a15a1cbf31bb",
            "containerd",
            (1, 7, 25),
        ),
        ("crio version 1.29.1", "crio", (1, 29, 1)),
        ("remote://1.0", "remote", (1, 0, 0)),
        ("1.2.3", "", (1, 2, 3)),
        ("nonsense", "", None),
        ("", "", None),
    ],
)
def test_parse_runtime_version(text: str, engine: str, version: Any) -> None:
    assert parse_runtime_version(text) == (engine, version)


@pytest.mark.parametrize(
    "engine,version,native,needs,cri_field",
    [
        ("containerd", "1.6.30", False, False, False),
        ("containerd", "1.6.20~ds1", False, False, False),
        ("containerd", "1.7.0", True, True, False),
        ("containerd", "1.7.1", True, True, False),
        ("containerd", "1.7.2", True, True, True),
        ("containerd", "1.7.12-0ubuntu2~22.04.1", True, True, True),
        ("containerd", "1.7.11-k3s2", True, True, True),
        ("containerd", "2.0.0", True, False, True),
        ("containerd", "2.1.3", True, False, True),
        ("containerd", None, False, False, False),
        ("cri-o", "1.23.1", False, False, False),
        ("crio", "1.23.2", True, False, False),
        ("crio", "1.29.1", True, False, True),
        ("docker", "24.0.7", False, False, False),
        ("docker", "25.0.0", True, True, False),
        ("docker", "28.2.0", True, False, False),
        ("podman", "4.3.1", False, False, False),
    ],
)
def test_cdi_support_rules(
    engine: str, version: str | None, native: bool, needs: bool, cri_field: bool
) -> None:
    s = cdi_support(engine, version)
    assert (s["native_cdi"], s["needs_enable_cdi"], s["cri_field"]) == (native, needs, cri_field)
    assert s["enabled_by_default"] == (native and not needs)
    assert s["reason"]


@given(
    st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)),
    st.sampled_from(["", "-0ubuntu2~22.04.1", "-k3s2", "+deb12u3", "~ds1", "-rc.1", ".4"]),
    st.sampled_from(["containerd://", "cri-o://", "docker://", ""]),
)
def test_version_parse_is_lenient(v: tuple[int, int, int], suffix: str, prefix: str) -> None:
    text = f"{prefix}{v[0]}.{v[1]}.{v[2]}{suffix}"
    assert parse_runtime_version(text)[1] == v
    assert parse_version(text) == v


@given(st.text(max_size=60))
def test_version_parse_never_raises(text: str) -> None:
    engine, version = parse_runtime_version(text)
    assert isinstance(engine, str)
    assert version is None or len(version) == 3


def _facts(**kw: Any) -> dict[str, Any]:
    base = {
        "cdi_enabled_in_config": None,
        "spec_dirs": ["/etc/cdi", "/var/run/cdi"],
        "runtimes": ["runc"],
        "gpu_runtimes": [],
        "default_runtime": "runc",
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    "engine,version,facts,enabled,mode,prefix",
    [
        ("containerd", (1, 6, 20), _facts(), False, "gpu-runtime-cdi", "nvidia.cdi.k8s.io/"),
        ("containerd", (1, 7, 12), _facts(), False, "native-cdi", "cdi.k8s.io/"),
        ("containerd", (1, 7, 12), _facts(cdi_enabled_in_config=True), True, "native-cdi", "cdi.k8s.io/"),
        ("containerd", (2, 0, 1), _facts(), True, "native-cdi", "cdi.k8s.io/"),
        ("containerd", (2, 0, 1), _facts(cdi_enabled_in_config=False), False, "native-cdi", "cdi.k8s.io/"),
        ("crio", (1, 29, 1), _facts(), True, "native-cdi", "cdi.k8s.io/"),
        # no native CDI and no annotation path: the legacy injection (hook / --runtime nvidia)
        ("crio", (1, 22, 0), _facts(), False, "legacy", None),
        ("docker", (24, 0, 7), _facts(), False, "legacy", None),
        # an unknown version decides nothing (configure asks the binary or refuses)
        ("containerd", None, _facts(), False, "undecided", None),
    ],
)
def test_recommendation(
    engine: str, version: Any, facts: dict[str, Any], enabled: bool, mode: str, prefix: str
) -> None:
    r = assemble(engine, version, "", facts)
    assert r["cdi_enabled"] is enabled
    assert r["recommendation"]["mode"] == mode
    assert r["recommendation"]["annotation_prefix"] == prefix
    assert r["recommendation"]["set_as_default"] is (mode == "gpu-runtime-cdi")
    if mode == "native-cdi" and r["cdi_needs_enable"] and engine == "containerd":
        assert "--enable-cdi" in r["recommendation"]["command"]


def test_containerd_facts_from_dump_with_gpu_default() -> None:
    cfg = {
        "plugins": {
            "io.containerd.grpc.v1.cri": {
                "enable_cdi": True,
                "cdi_spec_dirs": ["/var/run/cdi"],
                "containerd": {
                    "default_runtime_name": "nvidia",
                    "runtimes": {
                        "runc": {"options": {}},
                        "nvidia": {
                            "options": {"BinaryName": "/usr/local/nvidia/toolkit/nvidia-container-runtime"}
                        },
                        "nvidia-cdi": {
                            "options": {
                                "BinaryName": "/usr/local/nvidia/toolkit/nvidia-container-runtime.cdi"
                            }
                        },
                        "fast": {"options": {"BinaryName": "/usr/bin/crun"}},
                    },
                },
            }
        }
    }
    f = containerd_facts(cfg)
    assert f["gpu_runtimes"] == ["nvidia", "nvidia-cdi"]
    r = assemble("containerd", (1, 7, 12), "", f)
    assert (r["cdi_enabled"], r["gpu_runtime_configured"], r["gpu_runtime_default"]) == (True, True, True)
    assert r["spec_dirs"] == ["/var/run/cdi"]
    assert any("default runtime" in s for s in r["recommendation"]["steps"])


def test_detect_with_replayed_commands(tmp_path: Path) -> None:
    """`containerd --version` / `config dump` outputs replayed through the runner seam."""
    dump = (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true\n'
        '  [plugins."io.containerd.grpc.v1.cri".containerd]\n    default_runtime_name = "runc"\n'
    )
    calls: list[list[str]] = []

    def run(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        if argv[-1] == "--version":
            return 0, "containerd containerd.io 1.7.25 bcc810d\n"
        return 0, dump

    r = detect("containerd", executable="/usr/bin/containerd", config=str(tmp_path / "none.toml"), run=run)
    assert r["version"] == "1.7.25" and r["config_source"] == "containerd config dump"
    assert r["cdi_supported"] and r["cdi_enabled"]
    assert r["recommendation"]["mode"] == "native-cdi"
    assert calls == [["/usr/bin/containerd", "--version"], ["/usr/bin/containerd", "config", "dump"]]


def test_detect_reads_file_and_imports_without_binary(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    assert (
        main(
            [
                "runtime",
                "configure",
                "--runtime",
                "containerd",
                "--config",
                str(cfg),
                "--drop-in-config",
                str(tmp_path / "conf.d" / "99-nvidia.toml"),
                "--set-as-default",
                "--enable-cdi",
                "--engine-version",
                "1.7.12",
            ]
        )
        == 0
    )
    r = detect(
        "containerd", config=str(cfg), executable="/nonexistent/containerd", version="1.7.12", dump=False
    )
    assert r["gpu_runtimes"] == ["nvidia"] and r["gpu_runtime_default"] and r["cdi_enabled"]


def test_detect_docker_and_crio_files(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text((INPUTS / "daemon.json").read_text())
    argv = ["runtime", "configure", "--runtime", "docker", "--config", str(daemon), "--enable-cdi"]
    assert main([*argv, "--engine-version", "27.1.0"]) == 0
    r = detect("docker", config=str(daemon), version="Docker version 27.1.0, build x")
    assert r["cdi_enabled"] and r["gpu_runtimes"] == ["nvidia"] and not r["gpu_runtime_default"]
    crio = tmp_path / "crio.conf"
    crio.write_text((INPUTS / "crio.conf").read_text())
    (tmp_path / "crio.conf.d").mkdir()
    assert (
        main(
            [
                "runtime",
                "configure",
                "--runtime",
                "crio",
                "--config",
                str(crio),
                "--drop-in-config",
                str(tmp_path / "crio.conf.d" / "99-nvidia.toml"),
            ]
        )
        == 0
    )
    r = detect("crio", config=str(crio), version="crio version 1.29.1")
    assert r["cdi_enabled"] and r["gpu_runtimes"] == ["nvidia"] and r["default_runtime"] == "crun"


@pytest.mark.integration
def test_detect_this_machines_containerd(capsys: pytest.CaptureFixture[str]) -> None:
    exe = require_tool("containerd")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    _, version = parse_runtime_version(out)
    assert version is not None
    assert main(["runtime", "detect", "--runtime", "containerd", "--executable", exe, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["engine"] == "containerd"
    assert r["version"] == ".".join(map(str, version))
    assert r["config_source"] == "containerd config dump"
    assert "runc" in r["runtimes"]
    if version < (1, 7, 0):  # Debian 12's 1.6.20
        assert r["cdi_supported"] is False and r["cdi_enabled"] is False
        assert r["recommendation"]["mode"] == "gpu-runtime-cdi"
        assert r["recommendation"]["annotation_prefix"] == "nvidia.cdi.k8s.io/"
    assert main(["runtime", "detect", "--runtime", "containerd", "--executable", exe]) == 0
    assert "recommendation:" in capsys.readouterr().out
