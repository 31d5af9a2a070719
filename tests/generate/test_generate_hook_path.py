"""The hook a generated spec names, as upstream chooses it: config.toml's [nvidia-ctk] path,
else the installed nvidia-cdi-hook; this environment's gpuctk-hook only when nothing is
installed, with a warning. `cdi generate` says which it chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gpuctk.generate import hooks
from support.tools import venv_script


def _exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def bare(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(hooks, "UPSTREAM_HOOK", str(tmp_path / "usr-bin" / "nvidia-cdi-hook"))
    return tmp_path


def test_nothing_installed_falls_back_to_our_hook(bare):
    path, why, fallback = hooks.choose_hook_path(None)
    assert fallback and path == os.path.join(os.path.dirname(sys.executable), "gpuctk-hook")
    assert "no nvidia-cdi-hook launcher is installed" in why


def test_installed_launcher_wins(bare, monkeypatch):
    _exe(bare / "usr-bin" / "nvidia-cdi-hook")
    assert hooks.choose_hook_path("nvidia-ctk")[:3:2] == (str(bare / "usr-bin" / "nvidia-cdi-hook"), False)
    on_path = _exe(bare / "p" / "nvidia-cdi-hook")
    monkeypatch.setenv("PATH", str(bare / "p"))
    assert hooks.choose_hook_path(None)[0] == on_path


def test_config_path_wins_and_its_sibling_launcher_is_used(bare):
    _exe(bare / "usr-bin" / "nvidia-cdi-hook")
    ctk = _exe(bare / "tk" / "nvidia-ctk")
    assert hooks.choose_hook_path(ctk)[0] == ctk  # no launcher beside it: nvidia-ctk hook ...
    sibling = _exe(bare / "tk" / "nvidia-cdi-hook")
    path, why, fallback = hooks.choose_hook_path(ctk)
    assert (path, fallback) == (sibling, False) and "config.toml" in why


def test_cli_says_which_hook_it_chose(sim_nodes, tmp_path):
    node = sim_nodes.get("dgx-h100")
    tk = tmp_path / "tk"
    _exe(tk / "nvidia-ctk")
    _exe(tk / "nvidia-cdi-hook")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[nvidia-ctk]\npath = "{tk / "nvidia-ctk"}"\n')
    env = {**os.environ, "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg), "PATH": os.environ.get("PATH", "")}
    env.pop("NVIDIA_CTK_CDI_HOOK_PATH", None)
    args = [
        venv_script("gpuctk"),
        "cdi",
        "generate",
        "--driver-root",
        node.root,
        "--inventory",
        node.inventory_path,
    ]
    res = subprocess.run([*args, "--format", "json"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert f"gpuctk: info: hook path {tk / 'nvidia-cdi-hook'} (beside [nvidia-ctk] path" in res.stderr
    spec = json.loads(res.stdout)
    hook = spec["containerEdits"]["hooks"][0]
    assert hook["path"] == str(tk / "nvidia-cdi-hook") and hook["args"][0] == "nvidia-cdi-hook"
