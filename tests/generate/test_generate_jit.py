"""JIT specs for the shim: requested devices only, a cache keyed by driver version and
inventory fingerprint, invalidated by a driver change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gpuctk.generate.jit as jit
from gpuctk.errors import GpuctkError
from gpuctk.sim import create_node


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(tmp_path / "cache"))
    jit._memo.clear()
    yield tmp_path / "cache"
    jit._memo.clear()


def test_jit_only_requested_devices(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    spec = jit.jit_spec(["1", node.gpus[2]["uuid"]], {}, driver_root=node.root)
    assert spec["kind"] == "runtime.nvidia.com/gpu"
    assert [d["name"] for d in spec["devices"]] == ["1", node.gpus[2]["uuid"]]
    assert spec["containerEdits"]["env"][-1] == "NVIDIA_VISIBLE_DEVICES=void"
    from gpuctk.cdi import validate_spec_dict

    assert validate_spec_dict(spec) == []
    assert [d["name"] for d in jit.jit_spec([], {}, driver_root=node.root)["devices"]] == ["all"]
    assert jit.jit_spec(["none"], {}, driver_root=node.root)["devices"] == []
    with pytest.raises(GpuctkError, match=r"unresolvable CDI devices runtime\.nvidia\.com/gpu=9"):
        jit.jit_spec(["9"], {}, driver_root=node.root)


def test_jit_cache_warm_walks_nothing(sim_nodes, cache, monkeypatch):
    node = sim_nodes.get("dgx-h100")
    _spec, hit = jit.full_spec_cached({}, node.root)
    assert not hit and len(os.listdir(cache)) == 1
    jit._memo.clear()  # a new process: only the disk cache is left

    def forbidden(*a, **k):
        raise AssertionError("a warm JIT call must not list directories or run discovery")

    monkeypatch.setattr(os, "listdir", forbidden)
    monkeypatch.setattr(os, "scandir", forbidden)
    monkeypatch.setattr(jit, "_full_spec", forbidden)
    spec, hit = jit.full_spec_cached({}, node.root)
    assert hit and any(d["name"] == "all" for d in spec["devices"])


def test_jit_cache_invalidated_by_driver_change(tmp_path, cache):
    node = create_node("dgx-h100", str(tmp_path / "node"), driver_version="580.105.08")
    spec = jit.jit_spec(["0"], {}, driver_root=node.root)
    assert any("libcuda.so.580.105.08" in m["containerPath"] for m in spec["containerEdits"]["mounts"])
    assert jit.full_spec_cached({}, node.root)[1] is True
    node = create_node("dgx-h100", str(tmp_path / "node"), driver_version="590.44.01")
    hit = jit.full_spec_cached({}, node.root)[1]
    assert hit is False
    spec = jit.jit_spec(["0"], {}, driver_root=node.root)
    mounts = [m["containerPath"] for m in spec["containerEdits"]["mounts"]]
    assert any("libcuda.so.590.44.01" in m for m in mounts) and not any("580.105.08" in m for m in mounts)


def test_jit_config_shapes_the_spec(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    cfg = {
        "nvidia-ctk": {"path": "/usr/bin/nvidia-ctk"},
        "nvidia-container-runtime": {
            "modes": {
                "jit-cdi": {"nvcdi-disable-hooks": ["all"], "nvcdi-feature-flags": ["disable-ipc-discoverer"]}
            }
        },
    }
    spec = jit.jit_spec(["0"], cfg, driver_root=node.root)
    assert "hooks" not in spec["containerEdits"]
    assert not any("socket" in m["containerPath"] for m in spec["containerEdits"]["mounts"])
    spec = jit.jit_spec(["0"], {"nvidia-ctk": {"path": "/usr/bin/nvidia-ctk"}}, driver_root=node.root)
    assert spec["containerEdits"]["hooks"][0]["args"][:2] == ["nvidia-ctk", "hook"]


def test_jit_corrupt_cache_is_regenerated(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    jit.full_spec_cached({}, node.root)
    jit._memo.clear()
    (f,) = os.listdir(cache)
    (cache / f).write_text("{broken")
    spec, hit = jit.full_spec_cached({}, node.root)
    assert not hit and spec["devices"]


def test_jit_import_is_stdlib_only():
    code = (
        "import sys, gpuctk.generate.jit as j; j.cache_key({}, '/', '/'); "
        "bad = [m for m in ('yaml', 'tomlkit', 'lightkube') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_jit_other_modes(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    spec = jit.jit_spec(["all"], {}, driver_root=node.root, mode="nvswitch")
    assert spec["kind"] == "runtime.nvidia.com/nvswitch" and [d["name"] for d in spec["devices"]] == ["all"]
    spec = jit.jit_spec(["0"], {}, driver_root=node.root, mode="imex")
    assert spec["kind"] == "runtime.nvidia.com/imex-channel"
    with pytest.raises(GpuctkError, match="unknown JIT CDI mode"):
        jit.jit_spec(["0"], {}, driver_root=node.root, mode="bogus")
    orin = sim_nodes.get("jetson-orin")
    # modes.csv.mount-spec-path is a host path (the simulated Jetson's CSV files live in its root)
    csv_dir = os.path.join(orin.root, "etc/nvidia-container-runtime/host-files-for-container.d")
    cfg = {"nvidia-container-runtime": {"modes": {"csv": {"mount-spec-path": csv_dir}}}}
    spec = jit.jit_spec(["all"], cfg, driver_root=orin.root, mode="csv")
    assert [d["name"] for d in spec["devices"]] == ["all"]


def test_shim_creates_follow_a_driver_change(tmp_path):
    """Two `gpuctk-runtime create`s in jit-cdi mode (low-level runtime /bin/true) with the
    simulated driver upgraded in between: the second create mounts the new libraries."""
    import json

    from support.tools import venv_script

    shim = venv_script("gpuctk-runtime")
    node = create_node("dgx-h100", str(tmp_path / "node"), driver_version="580.105.08")
    conf = tmp_path / "config.toml"
    conf.write_text(
        f'[nvidia-container-cli]\nroot = "{node.root}"\n[nvidia-container-runtime]\n'
        'mode = "jit-cdi"\nruntimes = ["/bin/true"]\n'
    )
    env = dict(
        os.environ, NVIDIA_CTK_CONFIG_FILE_PATH=str(conf), GPUCTK_JIT_CACHE_DIR=str(tmp_path / "cache")
    )
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)

    def create(cid: str) -> list[str]:
        (bundle / "config.json").write_text(
            json.dumps(
                {
                    "ociVersion": "1.0.2",
                    "root": {"path": "rootfs"},
                    "linux": {},
                    "process": {
                        "args": ["sh"],
                        "cwd": "/",
                        "env": ["NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0"],
                    },
                }
            )
        )
        p = subprocess.run(
            [shim, "create", "--bundle", str(bundle), cid], env=env, capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        spec = json.loads((bundle / "config.json").read_text())
        assert [d["path"] for d in spec["linux"]["devices"] if d["path"].startswith("/dev/nvidia")][:1]
        return [m["destination"] for m in spec["mounts"]]

    first = create("a")
    assert "/usr/lib/x86_64-linux-gnu/libcuda.so.580.105.08" in first
    create_node("dgx-h100", str(tmp_path / "node"), driver_version="590.44.01")
    second = create("b")
    assert "/usr/lib/x86_64-linux-gnu/libcuda.so.590.44.01" in second
    assert not any("580.105.08" in m for m in second)
    assert len(os.listdir(tmp_path / "cache")) == 2  # one entry per driver


def test_jit_cache_not_trusted_when_writable_by_others(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    jit.full_spec_cached({}, node.root)
    jit._memo.clear()
    os.chmod(cache, 0o777)  # as if another user had pre-created the directory
    try:
        assert jit.full_spec_cached({}, node.root)[1] is False
    finally:
        os.chmod(cache, 0o700)
    jit._memo.clear()
    assert jit.full_spec_cached({}, node.root)[1] is True


def test_jit_cache_symlink_planted_at_entry_is_ignored(sim_nodes, cache, tmp_path):
    node = sim_nodes.get("dgx-h100")
    key = jit.cache_key({}, node.root, node.root)
    entry = jit.entry_path(key)
    assert os.path.dirname(entry) == str(cache)
    jit.full_spec_cached({}, node.root)
    forged = tmp_path / "forged.json"
    os.rename(entry, forged)  # a valid entry with the right key, reached through a symlink
    os.symlink(forged, entry)
    jit._memo.clear()
    assert jit._load_cached(key) is None
    assert jit.full_spec_cached({}, node.root)[1] is False


def test_jit_cache_symlinked_dir_is_neither_read_nor_written(sim_nodes, monkeypatch, tmp_path):
    node = sim_nodes.get("dgx-h100")
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    link = tmp_path / "cache-link"
    link.symlink_to(real)
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(link))
    jit._memo.clear()
    assert jit.full_spec_cached({}, node.root)[1] is False
    assert os.listdir(real) == []  # nothing written through the link
    jit._memo.clear()


def test_jit_warm_load_does_not_import_json(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    jit.full_spec_cached({}, node.root)
    code = (
        "import sys, gpuctk.generate.jit as j; spec, hit = j.full_spec_cached({}, sys.argv[1]); "
        "print(hit, 'json' in sys.modules, 're' in sys.modules, len(spec['devices']))"
    )
    env = dict(os.environ, **{jit.ENV_CACHE_DIR: str(cache)})
    out = subprocess.run(
        [sys.executable, "-c", code, node.root], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out[:3] == ["True", "False", "False"] and int(out[3]) > 1
