"""The shim's JIT spec in csv mode: ``modes.csv.mount-spec-path`` is read on the host, not
under the driver root, and ``csv_all`` (``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``) uses every
``*.csv`` file there, the base files only otherwise (NVIDIA/nvidia-container-toolkit
``internal/modifier/csv.go``: ``csv.GetFileList`` then ``csv.BaseFilesOnly``)."""

from __future__ import annotations

import os
import shutil

import pytest

import gpuctk.generate.jit as jit
from gpuctk.errors import GpuctkError
from gpuctk.sim import create_node

REL_CSV_DIR = "etc/nvidia-container-runtime/host-files-for-container.d"
EXTRA_LIB = "/usr/lib/aarch64-linux-gnu/nvidia/libextra-jetpack.so.1"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(tmp_path / "cache"))
    jit._memo.clear()
    yield
    jit._memo.clear()


@pytest.fixture
def jetson(tmp_path):
    """A simulated Orin whose CSV files live in a host directory outside its driver root
    (the driver root's own copy is removed: reading it would be the old bug), plus one
    non-base file ``extra.csv`` naming a library that exists under the driver root."""
    node = create_node("jetson-orin", str(tmp_path / "orin"))
    mount_specs = tmp_path / "host-files-for-container.d"
    shutil.copytree(os.path.join(node.root, REL_CSV_DIR), mount_specs)
    shutil.rmtree(os.path.join(node.root, REL_CSV_DIR))
    (mount_specs / "extra.csv").write_text(f"lib, {EXTRA_LIB}\n")
    lib = os.path.join(node.root, EXTRA_LIB.lstrip("/"))
    with open(lib, "wb") as f:
        f.write(b"\x7fELF")
    cfg = {"nvidia-container-runtime": {"modes": {"csv": {"mount-spec-path": str(mount_specs)}}}}
    return node, cfg, mount_specs


def _mounted(spec: dict) -> list[str]:
    return [m["containerPath"] for m in spec["containerEdits"].get("mounts") or []]


def test_csv_mode_reads_the_mount_spec_path_on_the_host(jetson, cache):
    node, cfg, _dirs = jetson
    spec = jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv")
    assert [d["name"] for d in spec["devices"]] == ["all"]
    nodes = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
    assert "/dev/nvhost-ctrl-gpu" in nodes  # from devices.csv in the host directory
    assert "/usr/lib/aarch64-linux-gnu/nvidia/libcuda.so.1.1" in _mounted(spec)  # drivers.csv


def test_a_mount_spec_path_without_csv_files_fails_naming_the_host_files(jetson, cache, tmp_path):
    node, _cfg, _dirs = jetson
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = {"nvidia-container-runtime": {"modes": {"csv": {"mount-spec-path": str(empty)}}}}
    with pytest.raises(GpuctkError, match="no device nodes found from the CSV files") as exc:
        jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv")
    assert str(empty / "devices.csv") in str(exc.value)
    assert node.root not in str(exc.value).split("under")[0]  # never the driver root's copy


def test_base_files_only_unless_csv_mounts_all(jetson, cache):
    node, cfg, _dirs = jetson
    base = jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv")
    assert EXTRA_LIB not in _mounted(base)
    every = jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv", csv_all=True)
    assert EXTRA_LIB in _mounted(every)
    # one cache entry each: the base-files spec is not served for csv-mounts=all, nor back
    jit._memo.clear()
    assert EXTRA_LIB not in _mounted(jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv"))
    assert EXTRA_LIB in _mounted(jit.jit_spec(["all"], cfg, driver_root=node.root, mode="csv", csv_all=True))


def test_csv_file_selection(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    for name in ("l4t.csv", "devices.csv", "extra.csv", "OTHER.CSV", ".csv", "notes.txt"):
        (d / name).write_text("dev, /dev/x\n")
    (d / "sub.csv").mkdir()
    cfg = {"nvidia-container-runtime": {"modes": {"csv": {"mount-spec-path": str(d)}}}}
    names = lambda files: [os.path.basename(f) for f in files]  # noqa: E731
    assert names(jit.csv_files(cfg)) == ["devices.csv", "l4t.csv"]
    assert names(jit.csv_files(cfg, csv_all=True)) == ["OTHER.CSV", "devices.csv", "extra.csv", "l4t.csv"]
    missing = {"nvidia-container-runtime": {"modes": {"csv": {"mount-spec-path": str(tmp_path / "nope")}}}}
    assert jit.csv_files(missing) == [
        str(tmp_path / "nope" / f) for f in ("devices.csv", "drivers.csv", "l4t.csv")
    ]
    assert os.path.dirname(jit.csv_files({})[0]) == "/etc/nvidia-container-runtime/host-files-for-container.d"


def test_csv_all_is_ignored_by_modes_that_read_no_csv_files(sim_nodes, cache):
    node = sim_nodes.get("dgx-h100")
    assert jit.cache_key({}, node.root, node.root, "nvml", csv_all=False) == jit.cache_key(
        {}, node.root, node.root, "nvml", csv_all=False
    )
    jit.full_spec_cached({}, node.root, mode="imex")
    assert jit.full_spec_cached({}, node.root, mode="imex", csv_all=True)[1] is True


def test_editing_adding_or_removing_a_csv_file_misses_the_cache(jetson, cache):
    node, cfg, dirs = jetson
    assert jit.full_spec_cached(cfg, node.root, mode="csv", csv_all=True)[1] is False
    assert jit.full_spec_cached(cfg, node.root, mode="csv", csv_all=True)[1] is True
    with open(dirs / "devices.csv", "a") as f:
        f.write("dev, /dev/nvhost-new\n")
    assert jit.full_spec_cached(cfg, node.root, mode="csv", csv_all=True)[1] is False
    (dirs / "more.csv").write_text(f"lib, {EXTRA_LIB}\n")
    assert jit.full_spec_cached(cfg, node.root, mode="csv", csv_all=True)[1] is False
    (dirs / "extra.csv").unlink()
    spec, hit = jit.full_spec_cached(cfg, node.root, mode="csv", csv_all=True)
    assert hit is False and EXTRA_LIB in _mounted(spec)  # still named by more.csv
