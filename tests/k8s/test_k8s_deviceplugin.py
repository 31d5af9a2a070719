"""Allocate response shapes (NVIDIA/k8s-device-plugin internal/plugin/server.go), restating the upstream plugin test cases
(internal/plugin/server_test.go TestCDIAllocateResponse; TestAllocate's envvar dedup)."""

from __future__ import annotations

import pytest

from gpuctk.errors import GpuctkError
from gpuctk.k8s.deviceplugin import (
    PluginConfig,
    advertised_resources,
    all_cdi,
    allocate_response,
    any_cdi,
    mig_resource_name,
    parse_strategies,
)


def upstream_qn(cls: str, device_id: str) -> str:  # the upstream test's QualifiedNameFunc
    return f"nvidia.com/{cls}={device_id}"


CDI_CASES = [
    # (description, ids, strategies, prefix, gds, mofed, imex, expected annotations)
    ("empty device list has empty response", [], ["cdi-annotations"], "cdi.k8s.io/", False, False, [], {}),
    (
        "single device is added to annotations",
        ["gpu0"],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        False,
        False,
        [],
        {"cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gpu=gpu0"},
    ),
    (
        "single device with custom prefix",
        ["gpu0"],
        ["cdi-annotations"],
        "custom.cdi.k8s.io/",
        False,
        False,
        [],
        {"custom.cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gpu=gpu0"},
    ),
    (
        "multiple devices",
        ["gpu0", "gpu1"],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        False,
        False,
        [],
        {"cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gpu=gpu0,nvidia.com/gpu=gpu1"},
    ),
    (
        "multiple devices with custom prefix",
        ["gpu0", "gpu1"],
        ["cdi-annotations"],
        "custom.cdi.k8s.io/",
        False,
        False,
        [],
        {"custom.cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gpu=gpu0,nvidia.com/gpu=gpu1"},
    ),
    (
        "mofed devices are selected if configured",
        [],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        False,
        True,
        [],
        {"cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/mofed=all"},
    ),
    (
        "gds devices are selected if configured",
        [],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        True,
        False,
        [],
        {"cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gds=all"},
    ),
    (
        "gds and mofed devices are included with device ids",
        ["gpu0"],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        True,
        True,
        [],
        {
            "cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/gpu=gpu0,nvidia.com/gds=all,nvidia.com/mofed=all"
        },
    ),
    (
        "imex channel is included with devices",
        [],
        ["cdi-annotations"],
        "cdi.k8s.io/",
        False,
        False,
        ["0"],
        {"cdi.k8s.io/nvidia-device-plugin_uuid": "nvidia.com/imex-channel=0"},
    ),
]


@pytest.mark.parametrize(
    "desc,ids,strategies,prefix,gds,mofed,imex,expected", CDI_CASES, ids=[c[0] for c in CDI_CASES]
)
def test_upstream_cdi_annotation_cases(desc, ids, strategies, prefix, gds, mofed, imex, expected):
    cfg = PluginConfig(
        device_list_strategy=strategies,
        cdi_annotation_prefix=prefix,
        gds_enabled=gds,
        mofed_enabled=mofed,
        imex_channels=imex,
    )
    resp = allocate_response(cfg, ids, response_id="uuid", qualified_name=upstream_qn)
    assert resp.get("annotations", {}) == expected
    # all-CDI: no env var for the device list, no mounts, no CRI field
    assert "NVIDIA_VISIBLE_DEVICES" not in resp.get("envs", {})
    assert "cdiDevices" not in resp and "mounts" not in resp


def test_envvar_default_dedups_replicas():
    cfg = PluginConfig()
    resp = allocate_response(cfg, ["GPU-aaa::0", "GPU-aaa::1", "GPU-bbb"])
    assert resp == {"envs": {"NVIDIA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb"}}


def test_envvar_with_index_strategy_and_imex():
    cfg = PluginConfig(device_id_strategy="index", imex_channels=["0", "1"])
    resp = allocate_response(cfg, ["GPU-b", "GPU-a"], index_of={"GPU-a": "0", "GPU-b": "1"})
    assert resp["envs"] == {"NVIDIA_VISIBLE_DEVICES": "1,0", "NVIDIA_IMEX_CHANNELS": "0,1"}


def test_index_strategy_needs_an_index():
    with pytest.raises(GpuctkError, match="no index known"):
        allocate_response(PluginConfig(device_id_strategy="index"), ["GPU-x"], index_of={})


def test_volume_mounts():
    cfg = PluginConfig(device_list_strategy="volume-mounts", imex_channels=["3"])  # type: ignore[arg-type]
    resp = allocate_response(cfg, ["GPU-a", "GPU-b"])
    assert resp["envs"] == {"NVIDIA_VISIBLE_DEVICES": "/var/run/nvidia-container-devices"}
    assert resp["mounts"] == [
        {"containerPath": "/var/run/nvidia-container-devices/GPU-a", "hostPath": "/dev/null"},
        {"containerPath": "/var/run/nvidia-container-devices/GPU-b", "hostPath": "/dev/null"},
        {"containerPath": "/var/run/nvidia-container-devices/imex/3", "hostPath": "/dev/null"},
    ]


def test_cdi_cri_uses_the_cri_field_and_plugin_vendor():
    resp = allocate_response(PluginConfig(device_list_strategy="cdi-cri"), ["GPU-a", "GPU-b"])  # type: ignore[arg-type]
    assert resp == {
        "cdiDevices": [
            {"name": "k8s.device-plugin.nvidia.com/gpu=GPU-a"},
            {"name": "k8s.device-plugin.nvidia.com/gpu=GPU-b"},
        ]
    }


def test_cdi_cri_with_index_names_devices_by_index():
    cfg = PluginConfig(device_list_strategy="cdi-cri", device_id_strategy="index")  # type: ignore[arg-type]
    resp = allocate_response(cfg, ["GPU-a"], index_of={"GPU-a": "0"})
    assert resp["cdiDevices"] == [{"name": "k8s.device-plugin.nvidia.com/gpu=0"}]


def test_operator_combination_annotations_and_cri():
    cfg = PluginConfig(device_list_strategy="cdi-annotations,cdi-cri")  # type: ignore[arg-type]
    resp = allocate_response(cfg, ["GPU-a"], response_id="r1")
    assert resp["annotations"] == {
        "cdi.k8s.io/nvidia-device-plugin_r1": "k8s.device-plugin.nvidia.com/gpu=GPU-a"
    }
    assert resp["cdiDevices"] == [{"name": "k8s.device-plugin.nvidia.com/gpu=GPU-a"}]
    assert "envs" not in resp


def test_fresh_uuid_key_per_response():
    cfg = PluginConfig(device_list_strategy="cdi-annotations")  # type: ignore[arg-type]
    k1 = next(iter(allocate_response(cfg, ["a"])["annotations"]))
    k2 = next(iter(allocate_response(cfg, ["a"])["annotations"]))
    assert k1 != k2 and k1.startswith("cdi.k8s.io/nvidia-device-plugin_")


def test_pre_2510_operator_mix_envvar_and_annotations():
    cfg = PluginConfig(
        device_list_strategy="envvar,cdi-annotations",  # type: ignore[arg-type]
        cdi_annotation_prefix="nvidia.cdi.k8s.io/",
    )
    resp = allocate_response(cfg, ["GPU-a"], response_id="x")
    assert resp["envs"] == {"NVIDIA_VISIBLE_DEVICES": "GPU-a"}
    assert resp["annotations"] == {
        "nvidia.cdi.k8s.io/nvidia-device-plugin_x": "k8s.device-plugin.nvidia.com/gpu=GPU-a"
    }


def test_optional_modes_env_in_all_modes_and_device_specs():
    cfg = PluginConfig(device_list_strategy="cdi-cri", gdrcopy_enabled=True, mofed_enabled=True)  # type: ignore[arg-type]
    resp = allocate_response(cfg, ["GPU-a"])
    assert resp["envs"] == {"NVIDIA_GDRCOPY": "enabled", "NVIDIA_MOFED": "enabled"}
    assert [d["name"] for d in resp["cdiDevices"]] == [
        "k8s.device-plugin.nvidia.com/gpu=GPU-a",
        "k8s.device-plugin.nvidia.com/gdrcopy=all",
        "k8s.device-plugin.nvidia.com/mofed=all",
    ]
    # passDeviceSpecs only outside all-CDI mode
    assert "devices" not in allocate_response(
        PluginConfig(device_list_strategy="cdi-cri", pass_device_specs=True),  # type: ignore[arg-type]
        ["a"],
        device_nodes=["/dev/nvidia0"],
    )
    resp = allocate_response(
        PluginConfig(pass_device_specs=True, dev_root="/run/nvidia/driver"),
        ["a"],
        device_nodes=["/dev/nvidia0", "/dev/nvidiactl"],
    )
    assert resp["devices"][0] == {
        "containerPath": "/dev/nvidia0",
        "hostPath": "/run/nvidia/driver/dev/nvidia0",
        "permissions": "rw",
    }


def test_mps_adds_pipe_env_and_mounts():
    resp = allocate_response(PluginConfig(mps_root="/run/nvidia/mps"), ["GPU-a::2"])
    assert resp["envs"]["CUDA_MPS_PIPE_DIRECTORY"] == "/mps/nvidia.com/gpu/pipe"
    assert {m["hostPath"] for m in resp["mounts"]} == {
        "/run/nvidia/mps/nvidia.com/gpu/pipe",
        "/run/nvidia/mps/shm",
    }


def test_strategy_set_parsing():
    assert parse_strategies(None) == ["envvar"]
    assert parse_strategies("cdi-cri,cdi-annotations") == ["cdi-annotations", "cdi-cri"]
    assert any_cdi(["envvar", "cdi-cri"]) and not all_cdi(["envvar", "cdi-cri"]) and all_cdi(["cdi-cri"])
    with pytest.raises(GpuctkError, match="invalid device list strategy 'bogus'"):
        parse_strategies("envvar,bogus")
    with pytest.raises(GpuctkError, match="device id strategy"):
        PluginConfig(device_id_strategy="serial")


def test_mig_resource_names():
    assert mig_resource_name("1g.10gb", "single") == "nvidia.com/gpu"
    assert mig_resource_name("1g.10gb", "mixed") == "nvidia.com/mig-1g.10gb"
    assert mig_resource_name("1g.10gb+me", "mixed") == "nvidia.com/mig-1g.10gb.me"
    assert mig_resource_name("1g.12gb+me.all", "mixed") == "nvidia.com/mig-1g.12gb.me.all"
    with pytest.raises(GpuctkError):
        mig_resource_name("1g.10gb", "none")


def _gpu(uuid, mig=None, profiles=()):
    return {
        "uuid": uuid,
        "mig_mode": "Enabled" if mig else "Disabled",
        "mig_devices": [{"uuid": f"MIG-{uuid}-{i}", "profile": p} for i, p in enumerate(profiles)],
    }


def test_advertised_resources_per_mig_strategy():
    gpus = [_gpu("G0"), _gpu("G1", mig=True, profiles=("1g.10gb", "2g.20gb"))]
    assert advertised_resources(gpus, "none") == {"nvidia.com/gpu": ["G0", "G1"]}
    mixed = advertised_resources(gpus, "mixed")
    assert mixed == {
        "nvidia.com/gpu": ["G0"],
        "nvidia.com/mig-1g.10gb": ["MIG-G1-0"],
        "nvidia.com/mig-2g.20gb": ["MIG-G1-1"],
    }
    with pytest.raises(GpuctkError, match="same MIG mode"):
        advertised_resources(gpus, "single")
    same = [_gpu("G0", True, ("1g.10gb",)), _gpu("G1", True, ("1g.10gb", "1g.10gb"))]
    assert advertised_resources(same, "single") == {"nvidia.com/gpu": ["MIG-G0-0", "MIG-G1-0", "MIG-G1-1"]}
    with pytest.raises(GpuctkError, match="same profile"):
        advertised_resources([_gpu("G0", True, ("1g.10gb", "2g.20gb"))], "single")
