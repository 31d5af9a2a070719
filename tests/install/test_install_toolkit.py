"""`gpuctk install`: launchers keep their invoked name, nvidia-ctk dispatch, config, units, uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gpuctk.cli.main import main
from gpuctk.install import launchers, units

SCRIPTS = [
    "gpuctk",
    "gpuctk-runtime",
    "gpuctk-runtime-cdi",
    "gpuctk-runtime-legacy",
    "gpuctk-hook",
    "gpuctk-runtime-hook",
]


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """Console-script stand-ins that print which script ran, its argv[0] and its arguments."""
    d = tmp_path / "venv-bin"
    d.mkdir()
    for name in SCRIPTS:
        p = d / name
        p.write_text(
            f"#!{sys.executable}\nimport json, sys\n"
            f"print(json.dumps({{'script': {name!r}, 'argv0': sys.argv[0], 'args': sys.argv[1:]}}))\n"
        )
        p.chmod(0o755)
    return d


def _run(path: Path | str, *args: str) -> dict:
    p = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _install(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "install",
        "--toolkit-dir",
        str(tmp_path / "tk"),
        "--root",
        str(tmp_path / "root"),
        "--no-cdi-spec",
        *extra,
    ]


@pytest.mark.parametrize("name,script", sorted(launchers.SYMLINKS.items()))
def test_launcher_keeps_invoked_name(tmp_path: Path, fake_bin: Path, name: str, script: str) -> None:
    assert main(_install(tmp_path, "--bin-dir", str(fake_bin))) == 0
    out = _run(tmp_path / "tk" / name, "create", "--bundle", "/b")
    assert out["script"] == script
    assert os.path.basename(out["argv0"]) == name  # the shim picks .cdi/.legacy mode from this
    assert out["args"] == ["create", "--bundle", "/b"]


@pytest.mark.parametrize(
    "argv,script,args",
    [
        (["hook", "create-symlinks", "--link", "a::b"], "gpuctk-hook", ["create-symlinks", "--link", "a::b"]),
        (
            ["hook", "update-ldcache", "--folder", "/usr/lib"],
            "gpuctk-hook",
            ["update-ldcache", "--folder", "/usr/lib"],
        ),
        (
            ["cdi", "generate", "--output", "/var/run/cdi/nvidia.yaml"],
            "gpuctk",
            ["cdi", "generate", "--output", "/var/run/cdi/nvidia.yaml"],
        ),
        (
            ["runtime", "configure", "--runtime", "containerd"],
            "gpuctk",
            ["runtime", "configure", "--runtime", "containerd"],
        ),
        (["config", "--set", "a.b=c d"], "gpuctk", ["config", "--set", "a.b=c d"]),
    ],
)
def test_nvidia_ctk_dispatch(
    tmp_path: Path, fake_bin: Path, argv: list[str], script: str, args: list[str]
) -> None:
    assert main(_install(tmp_path, "--bin-dir", str(fake_bin))) == 0
    out = _run(tmp_path / "tk" / "nvidia-ctk", *argv)
    assert (out["script"], out["args"]) == (script, args)


def test_real_launchers_run_gpuctk(tmp_path: Path) -> None:
    assert main(_install(tmp_path)) == 0
    for name in ("gpuctk", "nvidia-ctk"):
        p = subprocess.run(
            [str(tmp_path / "tk" / name), "--version"], capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0 and p.stdout.startswith("gpuctk "), p.stderr


def test_install_writes_config_units_and_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _install(
        tmp_path,
        "--runtime",
        "containerd",
        "--set-as-default",
        "--engine-version",
        "1.6.20",
        "--runtime-mode",
        "cdi",
        "--annotation-prefix",
        "nvidia.cdi.k8s.io/",
    )
    assert main(argv) == 0
    root, tk = tmp_path / "root", tmp_path / "tk"
    cfg = tomllib.loads((root / "etc/nvidia-container-runtime/config.toml").read_text())
    assert cfg["nvidia-container-runtime-hook"]["path"] == str(tk / "nvidia-container-runtime-hook")
    assert cfg["nvidia-ctk"]["path"] == str(tk / "nvidia-ctk")
    assert cfg["nvidia-container-runtime"]["mode"] == "cdi"
    assert cfg["nvidia-container-runtime"]["modes"]["cdi"]["annotation-prefixes"] == ["nvidia.cdi.k8s.io/"]
    drop = tomllib.loads((root / "etc/containerd/conf.d/99-nvidia.toml").read_text())
    ctd = drop["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert ctd["default_runtime_name"] == "nvidia"
    assert ctd["runtimes"]["runc"] == {"runtime_type": "io.containerd.runc.v2"}  # < 2.0: whole CRI table
    assert {n: r["options"]["BinaryName"] for n, r in ctd["runtimes"].items() if n != "runc"} == {
        "nvidia": str(tk / "nvidia-container-runtime"),
        "nvidia-cdi": str(tk / "nvidia-container-runtime.cdi"),
        "nvidia-legacy": str(tk / "nvidia-container-runtime.legacy"),
    }
    service = (root / "etc/systemd/system" / units.SERVICE).read_text()
    assert f"ExecStart={tk}/gpuctk cdi generate --output=/var/run/cdi/nvidia.yaml" in service
    assert (
        "PathChanged=/lib/modules/%v/modules.dep"
        in (root / "etc/systemd/system" / units.PATH_UNIT).read_text()
    )
    rule = (root / "etc/udev/rules.d" / units.UDEV_RULE).read_text()
    assert 'SUBSYSTEM=="module", KERNEL=="nvidia"' in rule and units.SERVICE in rule
    capsys.readouterr()

    snapshot = {
        p: (p.read_bytes() if not p.is_symlink() else os.readlink(p))
        for p in tmp_path.rglob("*")
        if p.is_file() or p.is_symlink()
    }
    assert main(argv) == 0  # second install: nothing changes
    out = capsys.readouterr().out
    assert "written" not in out and "updated" not in out and "installed" not in out
    assert {
        p: (p.read_bytes() if not p.is_symlink() else os.readlink(p))
        for p in tmp_path.rglob("*")
        if p.is_file() or p.is_symlink()
    } == snapshot

    assert main(_install(tmp_path, "--uninstall")) == 0
    assert not tk.exists()
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert left == []


def test_install_keeps_existing_engine_config_and_uninstall_restores_it(tmp_path: Path) -> None:
    daemon = tmp_path / "root/etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True)
    original = '{\n  "log-level": "warn",\n  "features": {"buildkit": true}\n}\n'
    daemon.write_text(original)
    # features.cdi needs Docker >= 25 (not whatever dockerd the host has)
    assert (
        main(
            _install(
                tmp_path, "--runtime", "docker", "--enable-cdi", "--engine-version", "27.1.0", "--no-units"
            )
        )
        == 0
    )
    data = json.loads(daemon.read_text())
    assert sorted(data["runtimes"]) == ["nvidia", "nvidia-cdi", "nvidia-legacy"]
    assert data["features"] == {"buildkit": True, "cdi": True}
    assert main(_install(tmp_path, "--uninstall")) == 0
    assert daemon.read_text() == original


def test_refuses_to_replace_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tk = tmp_path / "tk"
    tk.mkdir()
    (tk / "nvidia-container-runtime").write_text("#!/bin/sh\necho upstream\n")
    assert main(_install(tmp_path)) == 1
    assert "not a gpuctk launcher" in capsys.readouterr().err
    assert (tk / "nvidia-container-runtime").read_text() == "#!/bin/sh\necho upstream\n"


def test_malformed_engine_config_stops_before_any_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "root/etc/containerd/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("version = 2\n[plugins\n")
    assert main(_install(tmp_path, "--runtime", "containerd", "--engine-version", "1.7.0")) == 1
    assert "line 2, column 9" in capsys.readouterr().err
    assert not (tmp_path / "tk").exists()
    assert not (tmp_path / "root/etc/nvidia-container-runtime").exists()


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_install(tmp_path, "--dry-run")) == 0
    assert "would create launcher" in capsys.readouterr().out
    assert not (tmp_path / "tk").exists() and not (tmp_path / "root").exists()


def test_install_generates_node_spec_from_simulated_node(tmp_path: Path) -> None:
    import gpuctk.sim as sim

    node = sim.create_node("dgx-h100", str(tmp_path / "node"))
    argv = [
        "install",
        "--toolkit-dir",
        str(tmp_path / "tk"),
        "--root",
        str(tmp_path / "root"),
        "--no-units",
        "--driver-root",
        node.driver_root,
        "--dev-root",
        node.dev_root,
        "--inventory",
        node.inventory_path,
    ]
    assert main(argv) == 0
    import yaml

    spec_path = tmp_path / "root/var/run/cdi/nvidia.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["kind"] == "nvidia.com/gpu"
    names = {d["name"] for d in spec["devices"]}
    assert {"0", "all", node.gpus[0]["uuid"]} <= names
    hooks = spec.get("containerEdits", {}).get("hooks", [])
    assert hooks and all(h["path"] == str(tmp_path / "tk" / "nvidia-cdi-hook") for h in hooks)
    first = spec_path.read_bytes()
    assert main(argv) == 0
    assert spec_path.read_bytes() == first  # regenerating gives the same bytes
    assert (
        main(
            [
                "install",
                "--toolkit-dir",
                str(tmp_path / "tk"),
                "--root",
                str(tmp_path / "root"),
                "--uninstall",
            ]
        )
        == 0
    )
    assert not spec_path.exists()


def test_uninstall_dry_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_install(tmp_path, "--runtime", "containerd", "--engine-version", "1.6.20")) == 0
    files = {
        p: (p.read_bytes() if not p.is_symlink() else os.readlink(p))
        for p in tmp_path.rglob("*")
        if p.is_file() or p.is_symlink()
    }
    capsys.readouterr()
    assert main(_install(tmp_path, "--uninstall", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert f"would remove {tmp_path / 'tk' / 'nvidia-ctk'}" in out
    assert "-BinaryName" in out  # the engine change is shown as a diff
    assert {
        p: (p.read_bytes() if not p.is_symlink() else os.readlink(p))
        for p in tmp_path.rglob("*")
        if p.is_file() or p.is_symlink()
    } == files


@pytest.mark.parametrize(
    "manifest,msg",
    [
        ('{"files": "abc"}', "field files: must be an array of absolute paths"),
        ('{"files": ["relative"]}', "field files: must be an array of absolute paths"),
        ('{"engine": [{"bogus": 1}]}', "field engine: not a recorded engine configuration"),
        ("[]", "the top level must be a JSON object"),
    ],
)
def test_uninstall_refuses_bad_manifest(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    manifest: str,
    msg: str,
) -> None:
    tk = tmp_path / "tk"
    tk.mkdir()
    (tk / ".gpuctk-install.json").write_text(manifest)
    victim = tmp_path / "relative"
    victim.write_text("keep")
    monkeypatch.chdir(tmp_path)  # a relative path in the manifest must not delete ./relative
    assert main(_install(tmp_path, "--uninstall")) == 1
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert victim.read_text() == "keep"


def test_missing_inventory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "install",
        "--toolkit-dir",
        str(tmp_path / "tk"),
        "--root",
        str(tmp_path / "root"),
        "--inventory",
        str(tmp_path / "nope.json"),
    ]
    assert main(argv) == 1
    assert "--inventory" in capsys.readouterr().err
    assert not (tmp_path / "tk").exists()


@pytest.mark.parametrize("what", ["binary", "directory"])
def test_foreign_nvidia_ctk_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    target = tmp_path / "tk" / "nvidia-ctk"
    target.parent.mkdir()
    if what == "binary":
        target.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    else:
        target.mkdir()
    assert main(_install(tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"{target}: exists and is not a gpuctk launcher" in err and err.count("\n") == 1
    assert target.is_dir() if what == "directory" else target.read_bytes().startswith(b"\x7fELF")


def test_refresh_service_regenerates_the_same_spec(tmp_path: Path) -> None:
    """The refresh unit names the node paths (no --root prefix), the installed nvidia-cdi-hook
    (so gVisor still recognises the hooks after a refresh) and install's discovery roots."""
    argv = _install(
        tmp_path,
        "--cdi-dir",
        str(tmp_path / "root/etc/cdi"),
        "--driver-root",
        "/run/nvidia/driver",
        "--dev-root",
        "/run/nvidia/dev",
    )
    assert main(argv) == 0
    service = (tmp_path / "root/etc/systemd/system" / units.SERVICE).read_text()
    exec_start = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    assert exec_start == (
        f"ExecStart={tmp_path}/tk/gpuctk cdi generate --output=/etc/cdi/nvidia.yaml "
        f"--hook-path={tmp_path}/tk/nvidia-cdi-hook --driver-root=/run/nvidia/driver "
        "--dev-root=/run/nvidia/dev"
    )


def test_uninstall_undoes_every_engine_installed_for(tmp_path: Path) -> None:
    daemon = tmp_path / "root/etc/docker/daemon.json"
    assert (
        main(_install(tmp_path, "--runtime", "containerd", "--engine-version", "1.6.20", "--no-units")) == 0
    )
    assert main(_install(tmp_path, "--runtime", "docker", "--no-units")) == 0
    assert sorted(json.loads(daemon.read_text())["runtimes"]) == ["nvidia", "nvidia-cdi", "nvidia-legacy"]
    assert main(_install(tmp_path, "--uninstall")) == 0
    root = tmp_path / "root"
    left = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".gpuctk-backup-" not in p.name
    )
    assert left == []  # both engines' configs undone (gpuctk created them: removed); backups are kept


def test_uninstall_removes_only_unchanged_files_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A unit changed since install, and a path outside the managed directories that someone
    added to the manifest, are left in place with the reason; the rest goes."""
    assert main(_install(tmp_path)) == 0
    service = tmp_path / "root/etc/systemd/system" / units.SERVICE
    service.write_text(service.read_text() + "# local change\n")
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("not install's")
    manifest_path = tmp_path / "tk" / ".gpuctk-install.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].append(str(victim))
    manifest["written"][str(victim)] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(_install(tmp_path, "--uninstall")) == 0
    err = capsys.readouterr().err
    assert f"{service}: changed since gpuctk install wrote it: left in place" in err
    assert f"{victim}: outside the directories gpuctk install manages: left in place" in err
    assert service.exists() and victim.read_text() == "not install's"
    assert not (tmp_path / "root/etc/systemd/system" / units.PATH_UNIT).exists()
    assert not (tmp_path / "tk" / "nvidia-ctk").exists()


def test_install_backs_up_and_restores_an_existing_config_toml_with_its_comments(tmp_path: Path) -> None:
    cfg = tmp_path / "root/etc/nvidia-container-runtime/config.toml"
    cfg.parent.mkdir(parents=True)
    original = b'# site settings\n[nvidia-container-runtime]\n# chosen by ops\nlog-level = "debug"\n'
    cfg.write_bytes(original)
    assert main(_install(tmp_path)) == 0
    text = cfg.read_text()
    assert "# site settings" in text and "# chosen by ops" in text  # edited in place, not re-rendered
    assert tomllib.loads(text)["nvidia-ctk"]["path"] == str(tmp_path / "tk" / "nvidia-ctk")
    assert [p.name for p in cfg.parent.iterdir() if ".gpuctk-backup-" in p.name]
    assert main(_install(tmp_path, "--uninstall")) == 0
    assert cfg.read_bytes() == original
    assert sorted(p.name for p in cfg.parent.iterdir()) == ["config.toml"]
