"""NVML with a driver root other than ``/``: ``libnvidia-ml.so.1`` is loaded from the driver
root by path before nvmlInit (NVIDIA/nvidia-container-toolkit ``pkg/nvcdi/lib.go``), and when
that cannot work the inventory falls back to procfs/sysfs with a warning saying why."""

from __future__ import annotations

import ctypes
import os
import sys
import types
from typing import Any

import pytest

from gpuctk.discover import inventory
from gpuctk.discover.inventory import select_inventory
from gpuctk.discover.rootfs import DriverRoot

LIB_DIR = "usr/lib/x86_64-linux-gnu"


def _driver_root(tmp_path, with_library: bool = True) -> str:
    """A driver root (``/run/nvidia/driver`` style) holding libnvidia-ml.so.1 -> .so.570.148.08."""
    root = tmp_path / "driver"
    libdir = root / LIB_DIR
    libdir.mkdir(parents=True)
    if with_library:
        (libdir / "libnvidia-ml.so.570.148.08").write_bytes(b"not an ELF object")
        os.symlink("libnvidia-ml.so.570.148.08", libdir / "libnvidia-ml.so.1")
    return str(root)


def _fake_pynvml(loaded: list[str], expect: str | None) -> types.ModuleType:
    """A pynvml whose nvmlInit succeeds only when ``expect`` was loaded first (None: when
    nothing was: pynvml must load the library itself)."""
    m: Any = types.ModuleType("pynvml")

    def init() -> None:
        last = loaded[-1] if loaded else None
        if last != expect:
            raise RuntimeError(f"NVML_ERROR_LIB_RM_VERSION_MISMATCH (loaded {loaded})")

    m.nvmlInit = init
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: 1
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetMigMode = lambda h: (0, 0)
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"00000000:3B:00.0")
    m.nvmlDeviceGetMinorNumber = lambda h: 4
    m.nvmlDeviceGetUUID = lambda h: "GPU-driver-root"
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H200"
    m.nvmlSystemGetCudaDriverVersion = lambda: 12080
    m.nvmlSystemGetDriverVersion = lambda: "570.148.08"
    return m


@pytest.fixture
def loads(monkeypatch):
    """Every library the inventory preloads through ctypes (recorded, not loaded)."""
    loaded: list[str] = []

    def fake_cdll(path, mode=0, *a, **k):
        assert mode & ctypes.RTLD_GLOBAL, "preloaded globally, so pynvml's dlopen finds it"
        loaded.append(path)
        return object()

    monkeypatch.setattr(ctypes, "CDLL", fake_cdll)
    return loaded


def test_nvml_is_used_with_the_driver_roots_library(tmp_path, monkeypatch, loads):
    root = _driver_root(tmp_path)
    lib = os.path.join(root, LIB_DIR, "libnvidia-ml.so.570.148.08")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(loads, expect=lib))
    warnings: list[str] = []
    inv = select_inventory(None, dev_root="/", driver_root=root, warnings=warnings)
    assert inv["source"] == "nvml" and [g["uuid"] for g in inv["gpus"]] == ["GPU-driver-root"]
    assert loads == [lib] and warnings == []


def test_the_driver_roots_library_search_paths_are_honoured(tmp_path, monkeypatch, loads):
    root = _driver_root(tmp_path, with_library=False)
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "libnvidia-ml.so.1").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(loads, expect=str(extra / "libnvidia-ml.so.1")))
    dr = DriverRoot(root, [str(extra)])
    assert select_inventory(None, dev_root="/", driver_root=root, root=dr)["source"] == "nvml"


def test_host_root_lets_pynvml_load_the_library_itself(monkeypatch, loads):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(loads, expect=None))
    warnings: list[str] = []
    assert select_inventory(None, dev_root="/", driver_root="/", warnings=warnings)["source"] == "nvml"
    assert loads == [] and warnings == []


def test_no_library_under_the_driver_root_falls_back_with_a_warning(tmp_path, monkeypatch, loads):
    root = _driver_root(tmp_path, with_library=False)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(loads, expect=None))  # would succeed
    monkeypatch.setattr(inventory, "from_procfs", lambda dev_root: {"source": f"procfs:{dev_root}"})
    warnings: list[str] = []
    assert select_inventory(None, dev_root="/", driver_root=root, warnings=warnings)["source"] == "procfs:/"
    assert warnings == [
        f"NVML not used (no libnvidia-ml.so.1 under the driver root {root}): GPU inventory from procfs/sysfs"
    ]
    assert loads == []  # the host's own library is never used for another driver root


def test_a_library_that_does_not_load_falls_back_with_a_warning(tmp_path, monkeypatch):
    """Real dlopen of a file that is not an ELF object (ctypes not faked)."""
    root = _driver_root(tmp_path)
    never: Any = _fake_pynvml([], expect=None)
    never.nvmlInit = lambda: pytest.fail("nvmlInit after a failed load")
    monkeypatch.setitem(sys.modules, "pynvml", never)
    monkeypatch.setattr(inventory, "from_procfs", lambda dev_root: {"source": "procfs"})
    warnings: list[str] = []
    assert select_inventory(None, dev_root="/", driver_root=root, warnings=warnings)["source"] == "procfs"
    (w,) = warnings
    lib = os.path.join(root, LIB_DIR, "libnvidia-ml.so.570.148.08")
    assert w.startswith(f"NVML not used (cannot load {lib}: ") and w.endswith(
        "): GPU inventory from procfs/sysfs"
    )


def test_nvml_init_failure_and_missing_pynvml_are_named(tmp_path, monkeypatch, loads):
    root = _driver_root(tmp_path)
    monkeypatch.setattr(inventory, "from_procfs", lambda dev_root: {"source": "procfs"})
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(loads, expect="/some/other/lib"))
    warnings: list[str] = []
    select_inventory(None, dev_root="/", driver_root=root, warnings=warnings)
    lib = os.path.join(root, LIB_DIR, "libnvidia-ml.so.570.148.08")
    assert warnings[0].startswith(
        f"NVML not used (nvmlInit failed with {lib}: NVML_ERROR_LIB_RM_VERSION_MISMATCH"
    )
    monkeypatch.setitem(sys.modules, "pynvml", None)
    warnings.clear()
    select_inventory(None, dev_root="/", driver_root=root, warnings=warnings)
    assert warnings == [
        "NVML not used (nvidia-ml-py (pynvml) is not installed): GPU inventory from procfs/sysfs"
    ]


def test_a_dev_root_other_than_the_host_never_asks_nvml(tmp_path, monkeypatch, loads):
    root = _driver_root(tmp_path)
    never: Any = _fake_pynvml(loads, expect=None)
    never.nvmlInit = lambda: pytest.fail("NVML asked for a simulated dev root")
    monkeypatch.setitem(sys.modules, "pynvml", never)
    warnings: list[str] = []
    inv = select_inventory(None, dev_root=root, driver_root=root, warnings=warnings)
    assert inv["source"] == f"procfs:{root}" and loads == [] and warnings == []


def test_cdi_generate_context_gets_the_warning(tmp_path, monkeypatch, loads):
    """The generator's context hands its DriverRoot and warning list to select_inventory."""
    from gpuctk.generate.context import GenerateContext
    from gpuctk.generate.options import GenerateOptions

    root = _driver_root(tmp_path, with_library=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(inventory, "from_procfs", lambda dev_root: {"source": "procfs", "gpus": []})
    ctx = GenerateContext(GenerateOptions(mode="nvml", driver_root=root, dev_root="/"))
    assert ctx.inventory()["source"] == "procfs"
    assert any("no libnvidia-ml.so.1 under the driver root" in w for w in ctx.warnings)
