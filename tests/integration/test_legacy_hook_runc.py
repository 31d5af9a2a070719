"""A bundle run through gpuctk-runtime in legacy mode: runc really runs the inserted
gpuctk-runtime-hook prestart hook, which execs a stub nvidia-container-cli (first in PATH)
that records its argv and environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.containers import make_bundle, runc_run
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration


def test_legacy_prestart_hook_argv_under_runc(tmp_path):
    require_root()
    require_tool("runc")
    stub_dir = tmp_path / "stub-bin"
    stub_dir.mkdir()
    cli = stub_dir / "nvidia-container-cli"
    cli.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "{tmp_path}/argv"\nenv > "{tmp_path}/env"\n')
    cli.chmod(0o755)
    log = tmp_path / "cli.log"
    config = tmp_path / "config.toml"
    config.write_text(
        '[nvidia-container-runtime]\nmode = "legacy"\nruntimes = ["runc"]\n'
        '[nvidia-container-runtime-hook]\npath = "/nonexistent/nvidia-container-runtime-hook"\n'
        f'[nvidia-container-cli]\nload-kmods = false\nno-cgroups = true\nuser = "root:video"\n'
        f'ldcache = "/etc/ld.so.cache"\ndebug = "{log}"\nenvironment = ["GPUCTK_FROM_CONFIG=1", "LD_PRELOAD=/x.so"]\n'
        "[features]\ndisable-imex-channel-creation = true\n"
    )
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", "echo legacy-ok"],
        env=[
            "PATH=/bin",
            "NVIDIA_VISIBLE_DEVICES=GPU-1234,1",
            "NVIDIA_DRIVER_CAPABILITIES=compute,video",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.0",
            "NVIDIA_IMEX_CHANNELS=3",
            "LD_PRELOAD=/evil.so",
            "LD_LIBRARY_PATH=/evil",
        ],
    )
    env = {
        "PATH": f"{stub_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(config),
    }
    r = runc_run(bundle, runtime=venv_script("gpuctk-runtime"), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "legacy-ok"
    hooks = json.loads(Path(bundle, "config.json").read_text())["hooks"]["prestart"]
    assert [h["args"] for h in hooks] == [["gpuctk-runtime-hook", "prestart"]]
    argv = (tmp_path / "argv").read_text().splitlines()
    pid = [a for a in argv if a.startswith("--pid=")]
    assert len(pid) == 1 and int(pid[0][6:]) > 0
    ldconfig = "@/sbin/ldconfig.real" if os.path.exists("/sbin/ldconfig.real") else "@/sbin/ldconfig"
    assert argv == [
        str(cli),
        "--no-create-imex-channels",
        f"--debug={log}",
        "--ldcache=/etc/ld.so.cache",
        "--user=root:video",
        "configure",
        "--cuda-compat-mode=disabled",
        f"--ldconfig={ldconfig}",
        "--no-cgroups",
        "--device=GPU-1234,1",
        "--imex-channel=3",
        "--compute",
        "--video",
        "--require=cuda>=12.0",
        pid[0],
        os.path.join(bundle, "rootfs"),
    ]
    seen = (tmp_path / "env").read_text()
    assert "GPUCTK_FROM_CONFIG=1" in seen
    assert "LD_PRELOAD" not in seen and "LD_LIBRARY_PATH" not in seen  # neither the image's nor the config's


def test_legacy_hook_without_gpu_request_is_silent_under_runc(tmp_path):
    """The shim adds no hook when nothing is requested, so the hook is put into config.json here:
    runc runs it, it finds no GPU request and exits 0 without needing nvidia-container-cli."""
    require_root()
    require_tool("runc")
    config = tmp_path / "config.toml"
    config.write_text('[nvidia-container-runtime]\nmode = "legacy"\n')
    bundle = make_bundle(str(tmp_path / "bundle"), ["sh", "-c", "echo plain-ok"], env=["PATH=/bin"])
    cfg = json.loads(Path(bundle, "config.json").read_text())
    cfg["hooks"] = {
        "prestart": [
            {
                "path": venv_script("gpuctk-runtime-hook"),
                "args": ["gpuctk-runtime-hook", "prestart"],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"NVIDIA_CTK_CONFIG_FILE_PATH={config}"],
            }
        ]
    }
    Path(bundle, "config.json").write_text(json.dumps(cfg))
    r = runc_run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "plain-ok"
    assert "gpuctk-runtime-hook" not in r.stderr
