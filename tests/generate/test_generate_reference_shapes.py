"""The committed golden specs checked against upstream's shapes (NVIDIA/nvidia-container-toolkit
``internal/platform-support/dgpu/*``, ``internal/discover/hooks.go``, ``pkg/nvcdi/spec/*``),
independently of the generator: a golden regenerated from a wrong generator fails here."""

from __future__ import annotations

import glob
import json
import os

import pytest

from gpuctk.cdi import minimum_version

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "golden")
FILES = sorted(glob.glob(os.path.join(GOLDEN, "*.json")))
# NVIDIA/nvidia-container-toolkit internal/discover/hooks.go: order of the common-edit hooks
ORDER = [
    "create-symlinks",
    "enable-cuda-compat",
    "update-ldcache",
    "disable-device-node-modification",
    "update-application-profile",
    "chmod",
]


def _load(path):
    with open(path) as f:
        return json.load(f)


def _edits(spec):
    return [("common", spec.get("containerEdits") or {})] + [
        (d["name"], d["containerEdits"]) for d in spec["devices"]
    ]


def _hook_name(hook):
    args = hook["args"]
    if os.path.basename(hook["path"]) == "nvidia-ctk":
        assert args[:2] == ["nvidia-ctk", "hook"], args
        return args[2], args[3:]
    assert args[0] == os.path.basename(hook["path"]), args
    return args[1], args[2:]


def test_there_are_goldens():
    assert len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_golden_matches_reference_shapes(path):
    spec = _load(path)
    # the one minimum-version function, whose rules have their own table (tests/cdi/test_version.py)
    assert spec["cdiVersion"] == minimum_version(spec)
    assert "NVIDIA_VISIBLE_DEVICES=void" in spec["containerEdits"]["env"]
    names = [d["name"] for d in spec["devices"]]
    assert names == sorted(names) and len(set(names)) == len(names)
    for where, edits in _edits(spec):
        for node in edits.get("deviceNodes", []):
            assert node.get("hostPath") != node["path"], (where, node)  # dropped when equal
            assert "uid" not in node
        paths = [n["path"] for n in edits.get("deviceNodes", [])]
        assert paths == sorted(paths, key=lambda p: (p.count("/"), p)), where
        hook_names = []
        for hook in edits.get("hooks", []):
            assert hook["hookName"] == "createContainer" and hook["env"] == ["NVIDIA_CTK_DEBUG=false"]
            name, tail = _hook_name(hook)
            hook_names.append(name)
            if name == "create-symlinks":
                assert tail and len(tail) % 2 == 0
                assert all(f == "--link" and "::" in v for f, v in zip(tail[::2], tail[1::2]))
            elif name == "update-ldcache":
                if tail[:1] == ["--ldconfig-path"]:
                    tail = tail[2:]
                assert tail and all(f == "--folder" for f in tail[::2]) and len(tail) % 2 == 0
            elif name == "enable-cuda-compat":
                assert tail and all(
                    a.startswith(
                        ("--host-driver-version=", "--host-cuda-version=", "--cuda-compat-container-root=")
                    )
                    for a in tail
                )
                assert "*" not in tail[0]
            elif name == "chmod":
                assert tail[:2] == ["--mode", "755"] and tail[2::2] == ["--path"] * len(tail[3::2])
            else:
                assert name in ORDER and tail == []
        if where == "common":
            assert hook_names == sorted(hook_names, key=ORDER.index), hook_names


@pytest.mark.parametrize("name", ["dgx-h100-nvml", "dgx-a100-mig-nvml"])
def test_nvml_common_edits_as_upstream(name):
    spec = _load(os.path.join(GOLDEN, name + ".json"))
    common = spec["containerEdits"]
    hooks = [_hook_name(h)[0] for h in common["hooks"]]
    assert hooks[-4:] == [
        "enable-cuda-compat",
        "update-ldcache",
        "disable-device-node-modification",
        "update-application-profile",
    ]
    assert set(hooks[:-4]) == {"create-symlinks"}
    assert {n["path"] for n in common["deviceNodes"]} == {
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
    }
    assert spec["kind"] == "nvidia.com/gpu" and spec["devices"][-1]["name"] == "all"
    all_nodes = {n["path"] for n in spec["devices"][-1]["containerEdits"]["deviceNodes"]}
    per_device = {n["path"] for d in spec["devices"][:-1] for n in d["containerEdits"].get("deviceNodes", [])}
    assert all_nodes == per_device  # `all` is the union of the devices


def test_mig_devices_as_upstream():
    spec = _load(os.path.join(GOLDEN, "dgx-a100-mig-nvml.json"))
    by_name = {d["name"]: d for d in spec["devices"]}
    assert "0" not in by_name and "1" not in by_name  # full GPUs in MIG mode are skipped
    for name, dev in by_name.items():
        if ":" in name:
            paths = [n["path"] for n in dev["containerEdits"]["deviceNodes"]]
            parent = paths[0]
            assert parent.startswith("/dev/nvidia") and parent[len("/dev/nvidia") :].isdigit()
            caps = [p for p in paths if p.startswith("/dev/nvidia-caps/nvidia-cap")]
            assert len(caps) == 2 and len(paths) == 3  # parent + GI cap + CI cap, no DRM (no gfx)


def test_management_as_upstream():
    spec = _load(os.path.join(GOLDEN, "dgx-h100-management.json"))
    assert spec["kind"] == "management.nvidia.com/gpu" and [d["name"] for d in spec["devices"]] == ["all"]
    hooks = [_hook_name(h)[0] for h in spec["containerEdits"]["hooks"]]
    assert "disable-device-node-modification" not in hooks
    nodes = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
    assert not [
        p for p in nodes if os.path.basename(p).startswith(("nvidia-fs", "nvidia-nvswitch", "nvidia-nvlink"))
    ]
