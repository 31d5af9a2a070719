"""`gpuctk system create-device-nodes` / `create-dev-char-symlinks` against a --dev-root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gpuctk.cli.main import main
from gpuctk.install.devices import control_node_actions, parse_proc_devices
from support.containers import mknod_char
from support.tools import require_root

PROC_DEVICES = """Character devices:
  1 mem
  4 /dev/vc/0
195 nvidia-frontend
195 nvidia
236 nvidia-nvswitch
237 nvidia-caps
508 nvidia-uvm

Block devices:
  8 sd
195 nvidia-fake-block
"""


def test_parse_proc_devices() -> None:
    majors = parse_proc_devices(PROC_DEVICES)
    assert majors["nvidia"] == 195 and majors["nvidia-uvm"] == 508 and majors["nvidia-caps"] == 237
    assert "nvidia-fake-block" not in majors and "sd" not in majors


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            PROC_DEVICES,
            [
                ("nvidiactl", 195, 255),
                ("nvidia-modeset", 195, 254),
                ("nvidia-uvm", 508, 0),
                ("nvidia-uvm-tools", 508, 1),
            ],
        ),
        (
            "Character devices:\n195 nvidia-frontend\n",
            [("nvidiactl", 195, 255), ("nvidia-modeset", 195, 254)],
        ),
        ("Character devices:\n1 mem\n", []),
    ],
)
def test_control_node_plan(text: str, expected: list[tuple[str, int, int]]) -> None:
    actions, warnings = control_node_actions(parse_proc_devices(text), "/d/dev", set())
    assert [(os.path.basename(a.path), a.major, a.minor) for a in actions] == expected
    assert bool(warnings) == (len(expected) < 4)


def _proc(tmp_path: Path) -> str:
    p = tmp_path / "devices"
    p.write_text(PROC_DEVICES)
    return str(p)


def test_create_device_nodes_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev_root = tmp_path / "root"
    rc = main(
        [
            "system",
            "create-device-nodes",
            "--dev-root",
            str(dev_root),
            "--proc-devices",
            _proc(tmp_path),
            "--load-kernel-modules",
            "--driver-root",
            "/run/nvidia/driver",
            "--dry-run",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "chroot /run/nvidia/driver /sbin/modprobe nvidia",
        "chroot /run/nvidia/driver /sbin/modprobe nvidia-uvm",
        "chroot /run/nvidia/driver /sbin/modprobe nvidia-modeset",
        f"mknod --mode=0666 {dev_root}/dev/nvidiactl c 195 255",
        f"mknod --mode=0666 {dev_root}/dev/nvidia-modeset c 195 254",
        f"mknod --mode=0666 {dev_root}/dev/nvidia-uvm c 508 0",
        f"mknod --mode=0666 {dev_root}/dev/nvidia-uvm-tools c 508 1",
    ]
    assert not dev_root.exists()


def test_create_device_nodes_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    dev_root = tmp_path / "root"
    (dev_root / "dev").mkdir(parents=True)
    mknod_char(str(dev_root / "dev" / "nvidia-uvm"), 508, 0)  # already there: left alone
    argv = ["system", "create-device-nodes", "--dev-root", str(dev_root), "--proc-devices", _proc(tmp_path)]
    assert main(argv) == 0
    for name, (major, minor) in {
        "nvidiactl": (195, 255),
        "nvidia-modeset": (195, 254),
        "nvidia-uvm": (508, 0),
        "nvidia-uvm-tools": (508, 1),
    }.items():
        st = os.stat(dev_root / "dev" / name)
        assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)
    assert "nvidia-uvm c 508 0" not in capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == ""  # nothing left to do


def test_dev_char_symlinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    dev = tmp_path / "root" / "dev"
    mknod_char(str(dev / "nvidia0"), 195, 0)
    mknod_char(str(dev / "nvidiactl"), 195, 255)
    mknod_char(str(dev / "nvidia-caps" / "nvidia-cap1"), 237, 1)
    mknod_char(str(dev / "nvidia-nvswitch0"), 236, 0)  # excluded like upstream
    (dev / "nvidia-notadevice").write_text("")
    argv = ["system", "create-dev-char-symlinks", "--dev-root", str(tmp_path / "root")]
    assert main([*argv, "--dry-run"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        [
            f"ln -sfn ../nvidia0 {dev}/char/195:0",
            f"ln -sfn ../nvidiactl {dev}/char/195:255",
            f"ln -sfn ../nvidia-caps/nvidia-cap1 {dev}/char/237:1",
        ]
    )
    assert not (dev / "char").exists()
    assert main(argv) == 0
    assert sorted(os.listdir(dev / "char")) == ["195:0", "195:255", "237:1"]
    assert os.readlink(dev / "char" / "195:0") == "../nvidia0"
    assert os.stat(dev / "char" / "237:1").st_rdev == os.stat(dev / "nvidia-caps" / "nvidia-cap1").st_rdev
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out == ""  # idempotent


def test_dev_root_that_is_a_file_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_root = tmp_path / "file"
    dev_root.write_text("not a directory")
    rc = main(
        ["system", "create-device-nodes", "--dev-root", str(dev_root), "--proc-devices", _proc(tmp_path)]
    )
    err = capsys.readouterr().err
    assert rc == 2  # like doctor/snapshot --host-root: checked before anything is done
    assert err == f"gpuctk: error: --dev-root {dev_root}: not a directory\n"
    assert dev_root.read_text() == "not a directory"
