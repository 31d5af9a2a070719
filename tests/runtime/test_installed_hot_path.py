"""The create path of the *installed* executables imports only what it must.

tests/runtime/test_main.py checks ``sys.modules`` after calling ``main()`` in a prepared
interpreter; that never sees what starts the shim. Here the real entry points run: the venv's
``gpuctk-runtime``/``gpuctk-runtime-cdi`` (the sh front end) and a launcher made by
``gpuctk install``, as an engine would exec them. The shim reports ``sys.modules`` from inside
the process, at the moment it execs the low-level runtime, into the file named by
``$GPUCTK_DUMP_MODULES`` (root only, a new file; gpuctk.runtime.frontend).
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuctk import _preload
from gpuctk.cli.main import main as gpuctk_main
from support.tools import require_root, venv_script

BANNED = ("json", "re", "typing", "yaml", "tomlkit")
STUB = """#!/bin/sh
printf '%s\\n' "$0" "$@" > "$STUB_OUT"
"""
SPEC = {
    "cdiVersion": "0.5.0",
    "kind": "nvidia.com/gpu",
    "devices": [{"name": "0", "containerEdits": {"env": ["GPU0=yes"]}}],
    "containerEdits": {"env": ["FROM_SPEC=1"]},
}


@pytest.fixture
def node(tmp_path: Path) -> dict:
    require_root()  # the module dump is root only
    stub = tmp_path / "bin" / "fake-runc"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    (spec_dir / "gpu.json").write_text(json.dumps(SPEC))
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    cfg = tmp_path / "config.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NVIDIA_", "XDG_CONFIG", "GPUCTK_"))}
    env.update(
        {
            "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg),
            "GPUCTK_CONFIG_CACHE_DIR": str(cache),
            "STUB_OUT": str(tmp_path / "stub.out"),
        }
    )
    return {"tmp": tmp_path, "cfg": cfg, "spec_dir": spec_dir, "stub": str(stub), "env": env}


def _write_config(node: dict, mode: str) -> None:
    node["cfg"].write_text(
        f'[nvidia-container-runtime]\nmode = "{mode}"\nruntimes = ["{node["stub"]}"]\n'
        f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{node["spec_dir"]}"]\n'
    )
    t = time.time_ns() - 60 * 10**9  # a node's config is older than the 2 s the cache waits for
    os.utime(node["cfg"], ns=(t, t))


def _bundle(node: dict, request: list[str]) -> Path:
    b = node["tmp"] / "bundle"
    b.mkdir(exist_ok=True)
    spec = {"ociVersion": "1.0.2", "process": {"args": ["true"], "env": ["PATH=/bin", *request]}}
    (b / "config.json").write_text(json.dumps(spec))
    return b


def _run(exe: str, node: dict, *args: str, dump: Path | None = None) -> None:
    env = dict(node["env"])
    if dump is not None:
        env["GPUCTK_DUMP_MODULES"] = str(dump)
    r = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _launcher(node: dict, name: str) -> str:
    tk = node["tmp"] / "tk"
    argv = ["install", "--toolkit-dir", str(tk), "--root", str(node["tmp"] / "root"), "--no-cdi-spec"]
    assert gpuctk_main([*argv, "--no-units"]) == 0
    path = tk / name
    assert path.is_symlink() and os.path.realpath(path) == os.path.realpath(venv_script("gpuctk-runtime-cdi"))
    return str(path)


def _executable(node: dict, which: str) -> str:
    if which == "launcher":
        return _launcher(node, "nvidia-container-runtime.cdi")
    return venv_script(which)


def _banned(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == b or m.startswith(b + ".") for b in BANNED)]


CREATE_CASES = [
    ("gpuctk-runtime", "cdi", ["NVIDIA_VISIBLE_DEVICES=0"]),
    ("gpuctk-runtime", "auto", ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]),
    ("gpuctk-runtime", "legacy", []),
    # the -cdi/.cdi names force cdi mode
    ("gpuctk-runtime-cdi", "auto", ["NVIDIA_VISIBLE_DEVICES=0"]),
    ("launcher", "auto", ["NVIDIA_VISIBLE_DEVICES=0"]),
]


@pytest.mark.parametrize(("which", "mode", "request_env"), CREATE_CASES)
def test_installed_create_path_imports(node: dict, which: str, mode: str, request_env: list[str]) -> None:
    _write_config(node, mode)
    exe = _executable(node, which)
    b = _bundle(node, request_env)
    _run(exe, node, "create", "--bundle", str(b), "warm")  # fills the config and CDI caches
    b = _bundle(node, request_env)
    dump = node["tmp"] / "modules"
    _run(exe, node, "--root", "/run/x", "create", "--bundle", str(b), "cid", dump=dump)

    modules = dump.read_text().split()
    assert "gpuctk.runtime.main" in modules  # the dump really is the shim's
    assert _banned(modules) == []
    third_party = [
        m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | {"gpuctk", "__main__"}
    ]
    assert third_party == []
    if sys.prefix != sys.base_prefix:  # a venv: the front end starts python -I -S
        assert "site" not in modules
        assert "_distutils_hack" not in modules
    assert Path(node["env"]["STUB_OUT"]).read_text().splitlines() == [
        node["stub"],
        "--root",
        "/run/x",
        "create",
        "--bundle",
        str(b),
        "cid",
    ]
    if request_env:
        edited = json.loads((b / "config.json").read_text())
        assert "GPU0=yes" in edited["process"]["env"]


@pytest.mark.parametrize("which", ["gpuctk-runtime", "launcher"])
def test_installed_pass_through_starts_no_python(node: dict, which: str) -> None:
    _write_config(node, "cdi")
    exe = _executable(node, which)
    b = _bundle(node, ["NVIDIA_VISIBLE_DEVICES=0"])
    _run(exe, node, "create", "--bundle", str(b), "cid")  # Python records the low-level runtime
    dump = node["tmp"] / "modules"
    _run(exe, node, "--root", "/run/x", "state", "cid", dump=dump)
    assert Path(node["env"]["STUB_OUT"]).read_text().splitlines() == [
        node["stub"],
        "--root",
        "/run/x",
        "state",
        "cid",
    ]
    assert not dump.exists()  # the runtime ran, and no Python shim before it
    # a config change: the front end falls back to Python, which execs the same runtime
    st = os.stat(node["cfg"])
    os.utime(node["cfg"], ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    _run(exe, node, "delete", "cid", dump=dump)
    assert dump.exists()
    assert Path(node["env"]["STUB_OUT"]).read_text().splitlines() == [node["stub"], "delete", "cid"]


def test_module_dump_is_root_only_and_never_overwrites(node: dict) -> None:
    _write_config(node, "cdi")
    exe = venv_script("gpuctk-runtime")
    dump = node["tmp"] / "modules"
    dump.write_text("keep\n")
    b = _bundle(node, ["NVIDIA_VISIBLE_DEVICES=0"])
    _run(exe, node, "create", "--bundle", str(b), "cid", dump=dump)
    assert dump.read_text() == "keep\n"
    link = node["tmp"] / "link"
    link.symlink_to(node["tmp"] / "elsewhere")
    _run(exe, node, "create", "--bundle", str(b), "cid", dump=link)
    assert not (node["tmp"] / "elsewhere").exists()


# Imported by a create only on a miss (config parsed, CDI specs decoded), in auto mode (the
# platform probes), or for gpuctk-hook run-steps hooks: never by a warm cdi-mode create whose
# spec names no hook.
COLD_ONLY = (
    "gpuctk.config.render",
    "gpuctk.config.schema",
    "gpuctk.runtime.platform",
    "gpuctk.hooks",
    "gpuctk.hooks.steps",
    "gpuctk.cdi.decode",
    "gpuctk.cdi.validate",
)


def _preloaded(entry: str) -> set[str]:
    """The modules in ``entry``'s preload bundle, if there is one (a stale one loads nothing)."""
    path = _preload.bundle_path(entry, os.path.dirname(_preload.__file__))
    if not os.path.exists(path):
        return set()
    with open(path, "rb") as f:
        return {m[0] for m in marshal.loads(f.read())[3]}


@pytest.mark.parametrize("which", ["gpuctk-runtime", "gpuctk-runtime-cdi"])
def test_installed_warm_cdi_create_imports_no_cold_path_module(node: dict, which: str) -> None:
    _write_config(node, "cdi")
    exe = venv_script(which)
    # a scan is cached only once every spec file is 2 s old (gpuctk.cdi.cache.RACY_NS; a ctime
    # cannot be set back)
    age = time.time() - os.stat(node["spec_dir"] / "gpu.json").st_ctime
    time.sleep(max(0.0, 2.1 - age))
    cold_dump = node["tmp"] / "cold"
    _run(
        exe,
        node,
        "create",
        "--bundle",
        str(_bundle(node, ["NVIDIA_VISIBLE_DEVICES=0"])),
        "c1",
        dump=cold_dump,
    )
    cold = cold_dump.read_text().split()
    # the first create parses config.toml and the spec: the dump sees what a miss imports
    assert {"gpuctk.config.schema", "gpuctk.cdi.decode", "gpuctk.cdi.validate"} <= set(cold)
    warm_dump = node["tmp"] / "warm"
    b = _bundle(node, ["NVIDIA_VISIBLE_DEVICES=0"])
    _run(exe, node, "create", "--bundle", str(b), "c2", dump=warm_dump)
    warm = warm_dump.read_text().split()
    assert "gpuctk.runtime.main" in warm and "gpuctk.cdi.registry" in warm
    # (what the runtime's preload bundle holds is loaded with it, needed or not: gpuctk._preload)
    assert [m for m in COLD_ONLY if m in warm and m not in _preloaded("runtime")] == []
    assert "GPU0=yes" in json.loads((b / "config.json").read_text())["process"]["env"]
