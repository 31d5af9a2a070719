"""The NVML inventory backend, against a fake `pynvml` module (no GPU here)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from gpuctk.discover.inventory import from_nvml, select_inventory
from gpuctk.errors import GpuctkError


class _Pci:
    def __init__(self, bus: str) -> None:
        self.busId = bus.encode()


def _fake(mig_on_first: bool = True, fail_count: bool = False) -> types.ModuleType:
    m: Any = types.ModuleType("pynvml")
    gpus = [
        {
            "uuid": "GPU-a",
            "name": "NVIDIA A100-SXM4-40GB",
            "bus": "00000000:07:00.0",
            "minor": 3,
            "mig": mig_on_first,
        },
        {
            "uuid": "GPU-b",
            "name": "NVIDIA A100-SXM4-40GB",
            "bus": "00000000:0F:00.0",
            "minor": 1,
            "mig": False,
        },
    ]
    migs = [
        {"uuid": "MIG-x", "name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb", "gi": 2, "ci": 0},
        {"uuid": "MIG-y", "name": "NVIDIA A100-SXM4-40GB MIG 1g.5gb+gfx", "gi": 9, "ci": 0},
    ]
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None

    def count() -> int:
        if fail_count:
            raise RuntimeError("NVML_ERROR_UNKNOWN")
        return len(gpus)

    m.nvmlDeviceGetCount = count
    m.nvmlDeviceGetHandleByIndex = lambda i: ("gpu", i)
    m.nvmlDeviceGetMigMode = lambda h: (1 if gpus[h[1]]["mig"] else 0, 0)
    m.nvmlDeviceGetMaxMigDeviceCount = lambda h: 7

    def mig_handle(h, j):
        if j >= len(migs):
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return ("mig", j)

    m.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    m.nvmlDeviceGetName = lambda h: (gpus[h[1]]["name"] if h[0] == "gpu" else migs[h[1]]["name"]).encode()
    m.nvmlDeviceGetUUID = lambda h: gpus[h[1]]["uuid"] if h[0] == "gpu" else migs[h[1]]["uuid"]
    m.nvmlDeviceGetGpuInstanceId = lambda h: migs[h[1]]["gi"]
    m.nvmlDeviceGetComputeInstanceId = lambda h: migs[h[1]]["ci"]
    m.nvmlDeviceGetPciInfo = lambda h: _Pci(gpus[h[1]]["bus"])
    m.nvmlDeviceGetMinorNumber = lambda h: gpus[h[1]]["minor"]
    m.nvmlSystemGetCudaDriverVersion = lambda: 12080
    m.nvmlSystemGetDriverVersion = lambda: b"570.148.08"
    return m


def test_nvml_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake())
    inv = from_nvml()
    assert inv is not None
    assert inv["driver_version"] == "570.148.08" and inv["cuda_version"] == "12.8" and inv["source"] == "nvml"
    g0, g1 = inv["gpus"]
    assert (g0["minor"], g0["pci_bus_id"], g0["mig_enabled"]) == (3, "0000:07:00.0", True)
    assert [(m["uuid"], m["gpu_instance_id"], m["profile"], m["gfx"]) for m in g0["mig_devices"]] == [
        ("MIG-x", 2, "3g.20gb", False),
        ("MIG-y", 9, "1g.5gb+gfx", True),
    ]
    assert g1["mig_enabled"] is False and g1["mig_devices"] == []
    assert select_inventory(None, dev_root="/", driver_root="/")["source"] == "nvml"


def test_nvml_absent_or_failing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert from_nvml() is None
    broken: Any = _fake()
    broken.nvmlInit = lambda: (_ for _ in ()).throw(RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert from_nvml() is None
    monkeypatch.setitem(sys.modules, "pynvml", _fake(fail_count=True))
    with pytest.raises(GpuctkError, match="NVML"):
        from_nvml()
