"""`gpuctk runtime configure` on real files: backups, dry-run diffs, malformed input, exit codes."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from gpuctk.cli.main import main
from gpuctk.engines.apply import backups

INPUTS = Path(__file__).resolve().parents[1] / "data" / "engines" / "inputs"


def _ctd(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        str(tmp_path / "config.toml"),
        "--drop-in-config",
        str(tmp_path / "conf.d" / "99-nvidia.toml"),
        "--engine-version",
        "1.7.12",
        *extra,
    ]


def test_configure_backs_up_and_is_noop_the_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    original = (INPUTS / "containerd-v2-comments.toml").read_text()
    cfg.write_text(original)
    os.chmod(cfg, 0o600)
    assert main(_ctd(tmp_path, "--set-as-default", "--enable-cdi")) == 0
    assert "restart containerd" in capsys.readouterr().out
    [bak] = backups(str(cfg))
    assert Path(bak).read_text() == original
    assert os.stat(cfg).st_mode & 0o777 == 0o600  # mode kept by the atomic write
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(_ctd(tmp_path, "--set-as-default", "--enable-cdi")) == 0
    assert "unchanged" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot

    assert main(_ctd(tmp_path, "--uninstall")) == 0
    assert not (tmp_path / "conf.d" / "99-nvidia.toml").exists()
    assert cfg.read_text() == original  # same data as the pre-gpuctk backup: its bytes come back


def test_dry_run_prints_unified_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text((INPUTS / "containerd-v2-comments.toml").read_text())
    before = cfg.read_bytes()
    assert main(_ctd(tmp_path, "--set-as-default", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert f"--- {cfg}\n+++ {cfg}\n" in out
    assert '+imports = ["' + str(tmp_path / "conf.d") + '/*.toml"]' in out
    assert "--- /dev/null\n+++ " + str(tmp_path / "conf.d" / "99-nvidia.toml") in out
    assert '+default_runtime_name = "nvidia"' in out
    assert cfg.read_bytes() == before
    assert not (tmp_path / "conf.d").exists()
    assert backups(str(cfg)) == []


@pytest.mark.parametrize(
    "name,text,where",
    [
        ("config.toml", "version = 2\n[plugins\nx = 1\n", "line 2, column 9"),
        ("config.toml", 'version = 2\na = "unterminated\n', "line 2, column 18"),
    ],
)
def test_malformed_toml_refused_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, where: str
) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    mtime = os.stat(cfg).st_mtime_ns
    assert main(_ctd(tmp_path, "--set-as-default")) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gpuctk: error: {cfg}: invalid TOML")
    assert where in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert cfg.read_text() == text and os.stat(cfg).st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_malformed_daemon_json_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{\n  "runtimes": {,\n}\n')
    rc = main(["runtime", "configure", "--runtime", "docker", "--config", str(cfg)])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{cfg}: invalid JSON" in err and "line 2, column 16" in err
    assert cfg.read_text() == '{\n  "runtimes": {,\n}\n'


def test_malformed_drop_in_also_refused_before_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("version = 2\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "99-nvidia.toml").write_text("[[broken\n")
    assert main(_ctd(tmp_path)) == 1
    assert "99-nvidia.toml: invalid TOML" in capsys.readouterr().err
    assert cfg.read_text() == "version = 2\n"


@pytest.mark.parametrize(
    "argv,msg",
    [
        (
            ["--runtime", "containerd", "--runtime-path", "relative/bin"],
            "--runtime-path: must be an absolute path",
        ),
        (["--runtime", "docker", "--drop-in-config", "/x.json"], "docker has no drop-in"),
        (["--runtime", "crio", "--low-level-runtime", "runsc"], "only for containerd"),
        (["--runtime", "containerd", "--drop-in-config", "rel.toml"], "must be an absolute path"),
        (["--runtime", "containerd", "--cdi-spec-dir", "cdi"], "--cdi-spec-dir: must be an absolute path"),
        (
            ["--runtime", "crio", "--config-mode", "oci-hook", "--hook-path", "hook"],
            "--hook-path: must be an absolute",
        ),
        (["--runtime", "docker", "--engine-version", "x"], "--engine-version: no version number"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], msg: str
) -> None:
    rc = main(["runtime", "configure", "--config", str(tmp_path / "c"), *argv])
    assert rc == 2
    assert msg in capsys.readouterr().err


def test_empty_config_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("configure", "detect"):
        rc = main(["runtime", sub, "--runtime", "containerd", "--config", ""])
        assert rc == 2 and "--config: must not be empty" in capsys.readouterr().err


def test_docker_cli_round_trip(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    original = (INPUTS / "daemon.json").read_text()
    cfg.write_text(original)
    argv = [
        "runtime",
        "configure",
        "--runtime",
        "docker",
        "--config",
        str(cfg),
        "--set-as-default",
        "--enable-cdi",
        "--engine-version",  # features.cdi is written for Docker >= 25 only (not the host's dockerd)
        "27.1.0",
    ]
    assert main(argv) == 0
    data = json.loads(cfg.read_text())
    assert data["default-runtime"] == "nvidia" and data["features"]["cdi"] is True
    assert data["features"]["buildkit"] is True
    assert main([*argv[:6], "--uninstall"]) == 0
    assert cfg.read_text() == original


def test_runsc_cli_writes_runsc_toml_beside_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    argv = [
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        str(cfg),
        "--drop-in-config",
        "",
        "--runtime-name",
        "nvidia-gvisor",
        "--low-level-runtime",
        "runsc",
        "--engine-version",
        "1.7.12",
    ]
    assert main(argv) == 0
    runsc = tomllib.loads((tmp_path / "runsc.toml").read_text())
    assert runsc["binary_name"] == "/usr/bin/nvidia-container-runtime"
    assert runsc["runsc_config"] == {"nvproxy": "true"}
    entry = tomllib.loads(cfg.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][
        "nvidia-gvisor"
    ]
    assert entry["options"]["ConfigPath"] == str(tmp_path / "runsc.toml")
    assert main([*argv, "--uninstall"]) == 0
    assert not (tmp_path / "runsc.toml").exists()
    assert not cfg.exists()  # gpuctk created it; uninstall removes it again


@pytest.mark.parametrize(
    "runtime,name,text,msg",
    [
        (
            "containerd",
            "config.toml",
            'version = 2\nimports = "abc"\n',
            "field imports: must be an array of strings",
        ),
        (
            "containerd",
            "config.toml",
            'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\ncontainerd = 5\n',
            "field plugins.io.containerd.grpc.v1.cri.containerd: must be a table",
        ),
        ("containerd", "config.toml", "version = true\n", "field version: unsupported value True"),
        (
            "crio",
            "crio.conf",
            "[crio.runtime]\nruntimes = 5\n",
            "field crio.runtime.runtimes: must be a table",
        ),
    ],
)
@pytest.mark.parametrize("drop_in", ["", "conf.d/99-nvidia.toml"])
def test_wrong_types_refused_not_overwritten(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    runtime: str,
    name: str,
    text: str,
    msg: str,
    drop_in: str,
) -> None:
    cfg = tmp_path / name
    cfg.write_text(text)
    rc = main(
        [
            "runtime",
            "configure",
            "--runtime",
            runtime,
            "--config",
            str(cfg),
            "--engine-version",
            "1.7.12",
            "--drop-in-config",
            str(tmp_path / drop_in) if drop_in else "",
        ]
    )
    err = capsys.readouterr().err
    if runtime == "crio" and drop_in:  # the CRI-O drop-in is a separate file: the main config is only read
        assert rc == 0
        return
    assert rc == 1
    assert err.startswith(f"gpuctk: error: {cfg}: {msg}")
    assert err.count("\n") == 1
    assert cfg.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_detect_tolerates_odd_types_and_refuses_bad_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"runtimes": 5, "features": [], "default-runtime": 3, "cdi-spec-dirs": "x"}')
    assert (
        main(
            [
                "runtime",
                "detect",
                "--runtime",
                "docker",
                "--config",
                str(cfg),
                "--engine-version",
                "27.1.0",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["default_runtime"] == "runc" and report["gpu_runtimes"] == []
    assert report["spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    assert main(["runtime", "detect", "--runtime", "docker", "--engine-version", "garbage"]) == 2
    assert "--engine-version: no version number in 'garbage'" in capsys.readouterr().err


def test_uninstall_keeps_later_user_edits(tmp_path: Path) -> None:
    """Only a result with exactly a backup's data gets that backup's bytes; later edits stay."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'version = 2\n\n# user comment\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "a"\n'
    )
    argv = ["runtime", "configure", "--runtime", "containerd", "--config", str(cfg), "--drop-in-config", ""]
    assert main([*argv, "--set-as-default"]) == 0
    cfg.write_text(cfg.read_text().replace('"a"', '"b"'))
    assert main([*argv, "--uninstall"]) == 0
    data = tomllib.loads(cfg.read_text())
    assert data == {"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"sandbox_image": "b"}}}
    assert "# user comment" in cfg.read_text()


def test_write_failure_is_a_one_line_error(tmp_path: Path) -> None:
    from gpuctk.engines import apply
    from gpuctk.engines.model import ConfigureOptions
    from gpuctk.errors import GpuctkError

    drop_in = tmp_path / "conf.d" / "99-nvidia.toml"
    plan = apply.plan(
        ConfigureOptions(engine="containerd", config=str(tmp_path / "config.toml"), drop_in=str(drop_in))
    )
    (tmp_path / "conf.d").write_text("a file where the drop-in directory should be")
    with pytest.raises(GpuctkError, match=rf"^{drop_in}: cannot write: "):
        apply.apply(plan)


def test_foreign_oci_hook_is_backed_up_before_replacement(tmp_path: Path) -> None:
    hook = tmp_path / "hooks.d" / "oci-nvidia-hook.json"
    hook.parent.mkdir()
    foreign = '{"version": "1.0.0", "hook": {"path": "/usr/bin/other-hook"}}\n'
    hook.write_text(foreign)
    argv = [
        "runtime",
        "configure",
        "--runtime",
        "crio",
        "--config-mode",
        "oci-hook",
        "--oci-hook-path",
        str(hook),
    ]
    assert main(argv) == 0
    [bak] = backups(str(hook))
    assert Path(bak).read_text() == foreign
    assert json.loads(hook.read_text())["hook"]["path"] == "/usr/bin/nvidia-container-runtime-hook"
    assert main(argv) == 0 and backups(str(hook)) == [bak]  # ours now: no second backup


def test_cdi_annotation_prefix_sets_container_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # containerd's CRI plugin passes a pod's annotations into the OCI spec only when they match
    # the runtime's container_annotations: without it the shim never sees nvidia.cdi.k8s.io/ requests.
    cfg = tmp_path / "config.toml"
    original = (INPUTS / "containerd-v2-comments.toml").read_text()
    cfg.write_text(original)
    argv = _ctd(
        tmp_path, "--cdi-annotation-prefix", "nvidia.cdi.k8s.io/", "--cdi-annotation-prefix", "cdi.k8s.io/"
    )
    assert main(argv) == 0
    drop_in = tomllib.loads((tmp_path / "conf.d" / "99-nvidia.toml").read_text())
    entry = drop_in["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]
    assert entry["container_annotations"] == ["nvidia.cdi.k8s.io/*", "cdi.k8s.io/*"]
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(argv) == 0  # idempotent: globs are not appended twice
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot
    assert main(_ctd(tmp_path, "--uninstall")) == 0
    assert cfg.read_text() == original


@pytest.mark.parametrize("prefix", ["nvidia.cdi.k8s.io", "", "a/*"])
def test_bad_cdi_annotation_prefix_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    assert main(_ctd(tmp_path, "--cdi-annotation-prefix", prefix)) == 2
    assert "--cdi-annotation-prefix" in capsys.readouterr().err
