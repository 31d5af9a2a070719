"""Bad input to `runtime configure` / `install --cdi auto`: one line naming the file or the
command, exit 1, nothing written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gpuctk.cli.main import main
from gpuctk.engines.detect import assemble


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _configure(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        str(tmp_path / "config.toml"),
        "--drop-in-config",
        str(tmp_path / "conf.d" / "99-nvidia.toml"),
        *extra,
    ]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "body,words",
    [
        ("echo 'containerd: cannot exec' >&2; exit 3\n", "--version: failed: containerd: cannot exec"),
        ("echo 'containerd github.com/containerd/containerd dev'\n", "--version: no version number"),
    ],
    ids=["fails", "unparsable"],
)
def test_engine_binary_that_cannot_tell_its_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, words: str
) -> None:
    exe = _script(tmp_path / "containerd", body)
    assert main(_configure(tmp_path, "--executable", exe, "--cdi", "auto")) == 1
    line = _one_error_line(capsys)
    assert exe in line and words in line
    assert sorted(os.listdir(tmp_path)) == ["containerd"]


def test_unrunnable_engine_binary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exe = tmp_path / "containerd"
    exe.write_text("not a program")
    exe.chmod(0o755)
    assert main(_configure(tmp_path, "--executable", str(exe))) == 1
    assert str(exe) in _one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["containerd"]


def test_malformed_engine_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("version = 2\n[plugins\n")
    assert main(_configure(tmp_path, "--engine-version", "1.6.20", "--cdi", "auto")) == 1
    line = _one_error_line(capsys)
    assert str(cfg) in line and "(at line 2, column 9)" in line
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]
    assert cfg.read_text() == "version = 2\n[plugins\n"


def test_future_config_version_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("version = 5\n")
    assert main(_configure(tmp_path, "--engine-version", "2.5.0")) == 1
    line = _one_error_line(capsys)
    assert "field version: unsupported value 5 (gpuctk knows 1, 2, 3, 4" in line
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]
    assert main(_configure(tmp_path, "--engine-version", "2.5.0", "--force-config-version", "4")) == 0
    assert (tmp_path / "conf.d" / "99-nvidia.toml").exists()


def test_unparsable_engine_version_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_configure(tmp_path, "--engine-version", "latest")) == 2
    assert "--engine-version" in _one_error_line(capsys)
    assert os.listdir(tmp_path) == []


def test_install_cdi_auto_bad_engine_config_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    cfg = root / "etc" / "containerd" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("version = 'two'\n")
    argv = ["install", "--toolkit-dir", str(tmp_path / "tk"), "--root", str(root), "--runtime", "containerd"]
    assert main([*argv, "--cdi", "auto", "--engine-version", "1.6.20", "--no-units", "--no-cdi-spec"]) == 1
    assert str(cfg) in _one_error_line(capsys)
    assert not (tmp_path / "tk").exists()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "etc",
        "etc/containerd",
        "etc/containerd/config.toml",
    ]


def test_detect_warns_when_the_default_runtime_has_no_entry() -> None:
    """Defect 1, the detect half: what the old drop-in did to containerd 1.6 is reported."""
    facts = {
        "cdi_enabled_in_config": None,
        "spec_dirs": [],
        "runtimes": ["nvidia"],
        "gpu_runtimes": ["nvidia"],
        "default_runtime": "runc",
    }
    r = assemble("containerd", (1, 6, 20), "", facts)
    assert any("'runc' has no entry" in n and "will not load" in n for n in r["notes"])
