"""Generation behaviour: device ids, naming, hooks, feature flags, modes, transforms, CLI."""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuctk.cli.main import main
from gpuctk.errors import GpuctkError, UsageError
from gpuctk.generate import GenerateOptions, generate_spec
from gpuctk.generate.transform import merged_device, simplify, transform_root
from support.sim import check_spec_against_node, parse_hook_argv


def gen(node, **kw):
    kw.setdefault("hook_path", "/usr/bin/gpuctk-hook")
    return generate_spec(GenerateOptions(driver_root=node.root, inventory=node.inventory_path, **kw))


def hook_names(edits):
    return [parse_hook_argv(h)[0] for h in edits.get("hooks", [])]


def test_nvml_default_shape(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    spec, warnings = gen(node)
    names = [d["name"] for d in spec["devices"]]
    assert names[:8] == [str(i) for i in range(8)] and "all" in names
    assert {g["uuid"] for g in node.gpus} <= set(names)
    assert spec["kind"] == "nvidia.com/gpu" and spec["cdiVersion"] == "0.7.0"  # additionalGids for DRM nodes
    common = spec["containerEdits"]
    assert hook_names(common) == [
        "create-symlinks",
        "create-symlinks",
        "enable-cuda-compat",
        "update-ldcache",
        "disable-device-node-modification",
        "update-application-profile",
    ]
    assert common["env"][-1] == "NVIDIA_VISIBLE_DEVICES=void"
    assert [n["path"] for n in common["deviceNodes"]] == [
        "/dev/nvidia-modeset",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidiactl",
    ]
    all_dev = next(d for d in spec["devices"] if d["name"] == "all")
    assert (
        len([n for n in all_dev["containerEdits"]["deviceNodes"] if n["path"].startswith("/dev/nvidia")]) == 8
    )
    check_spec_against_node(spec)
    assert warnings == []


def test_device_ids_and_name_strategies(sim_nodes):
    node = sim_nodes.get("dgx-a100-mig")
    spec, _ = gen(node, device_ids=["0:1", node.gpus[2]["uuid"]], device_name_strategies=["type-index"])
    assert [d["name"] for d in spec["devices"]] == ["all", "gpu2", "mig0:1"]
    spec, _ = gen(node, device_ids=["1"], no_all_device=True)
    mig_uuids = {m["uuid"] for m in node.gpus[1]["mig_devices"]}
    assert {d["name"] for d in spec["devices"]} == {"1:0", "1:1", "1:2"} | mig_uuids
    spec, _ = gen(node, device_ids=["none"])
    assert spec["devices"] == []
    with pytest.raises(GpuctkError, match="--device-id 99"):
        gen(node, device_ids=["99"])


def test_mig_devices_use_caps_from_mig_minors(sim_nodes):
    node = sim_nodes.get("dgx-a100-mig")
    spec, _ = gen(node, device_ids=["0:0"], device_name_strategies=["index"], no_all_device=True)
    (dev,) = spec["devices"]
    assert [n["path"] for n in dev["containerEdits"]["deviceNodes"]] == [
        "/dev/nvidia0",
        "/dev/nvidia-caps/nvidia-cap21",
        "/dev/nvidia-caps/nvidia-cap22",
    ]


def test_upstream_hook_argv_shapes(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    spec, _ = gen(node, hook_path="/usr/bin/nvidia-cdi-hook", device_ids=["0"])
    for h in spec["containerEdits"]["hooks"]:
        assert h["path"] == "/usr/bin/nvidia-cdi-hook" and h["args"][0] == "nvidia-cdi-hook"
    spec, _ = gen(node, hook_path="/usr/bin/nvidia-ctk", device_ids=["0"])
    assert all(h["args"][:2] == ["nvidia-ctk", "hook"] for h in spec["containerEdits"]["hooks"])
    spec, _ = gen(node, hook_path=None, device_ids=["0"])
    assert os.path.basename(spec["containerEdits"]["hooks"][0]["path"]) == "gpuctk-hook"


def test_disable_enable_hooks_and_feature_flags(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    spec, _ = gen(node, disabled_hooks=["all"], device_ids=["0"])
    assert "hooks" not in spec["containerEdits"]
    assert all("hooks" not in d["containerEdits"] for d in spec["devices"])
    spec, _ = gen(node, disabled_hooks=["all"], enabled_hooks=["update-ldcache"], device_ids=["0"])
    assert hook_names(spec["containerEdits"]) == ["update-ldcache"]
    spec, _ = gen(
        node,
        disabled_hooks=["enable-cuda-compat", "create-symlinks"],
        enabled_hooks=["chmod"],
        device_ids=["0"],
    )
    names = hook_names(spec["containerEdits"])
    assert names == [
        "update-ldcache",
        "disable-device-node-modification",
        "update-application-profile",
        "chmod",
    ]
    chmod = spec["containerEdits"]["hooks"][-1]["args"]
    assert chmod[1:] == ["chmod", "--mode", "755", "--path", "/dev/dri"]
    spec, _ = gen(
        node,
        feature_flags=["no-additional-gids-for-device-nodes", "disable-ipc-discoverer"],
        device_ids=["0"],
    )
    assert spec["cdiVersion"] == "0.5.0"
    assert not any("socket" in m["containerPath"] for m in spec["containerEdits"]["mounts"])
    for bad in (
        {"mode": "bogus"},
        {"disabled_hooks": ["nope"]},
        {"enabled_hooks": ["all"]},
        {"feature_flags": ["nope"]},
        {"device_name_strategies": ["serial"]},
        {"vendor": "-bad-"},
    ):
        with pytest.raises(UsageError):
            gen(node, **bad)


def test_library_links_and_ldcache_folders(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    spec, _ = gen(node, device_ids=["0"])
    hooks = spec["containerEdits"]["hooks"]
    links = parse_hook_argv(hooks[1])[1].link
    d = "/usr/lib/x86_64-linux-gnu"
    for link in (
        f"libcuda.so.1::{d}/libcuda.so",
        f"libcuda.so.580.105.08::{d}/libcuda.so.1",
        f"libGLX_nvidia.so.580.105.08::{d}/libGLX_indirect.so.0",
        f"libvdpau_nvidia.so.580.105.08::{d}/vdpau/libvdpau_nvidia.so.1",
    ):
        assert link in links
    assert len({link.split("::")[1] for link in links}) == len(links)
    folders = parse_hook_argv(hooks[3])[1].folder
    assert folders[0] == d and f"{d}/vdpau" in folders
    mounts = {m["containerPath"] for m in spec["containerEdits"]["mounts"]}
    for p in (
        f"{d}/libcuda.so.580.105.08",
        "/usr/bin/nvidia-smi",
        "/lib/firmware/nvidia/580.105.08/gsp_ga10x.bin",
        "/run/nvidia-persistenced/socket",
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        "/etc/vulkan/icd.d/nvidia_icd.json",
    ):
        assert p in mounts, p


def test_modes(sim_nodes):
    h100 = sim_nodes.get("dgx-h100")
    spec, _ = gen(h100, mode="management")
    assert spec["kind"] == "management.nvidia.com/gpu" and [d["name"] for d in spec["devices"]] == ["all"]
    paths = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
    assert "/dev/nvidia-caps/nvidia-cap1" in paths and not any("nvswitch" in p for p in paths)
    assert "disable-device-node-modification" not in hook_names(spec["containerEdits"])
    spec, _ = gen(h100, mode="nvswitch")
    assert (
        spec["kind"] == "nvidia.com/nvswitch"
        and len(spec["devices"][0]["containerEdits"]["deviceNodes"]) == 5
    )
    spec, _ = gen(h100, mode="imex", device_ids=["channel0"])
    assert spec["kind"] == "nvidia.com/imex-channel" and [d["name"] for d in spec["devices"]] == ["0", "all"]
    for mode in ("gds", "mofed", "gdrcopy"):
        with pytest.raises(GpuctkError, match="no device nodes"):
            gen(h100, mode=mode)
    with pytest.raises(GpuctkError, match="IMEX channel"):
        gen(h100, mode="imex", device_ids=["5"])
    with pytest.raises(GpuctkError, match="no NVIDIA GPUs"):
        gen(sim_nodes.get("no-gpu"), mode="nvml")
    with pytest.raises(GpuctkError, match="dxg"):
        gen(h100, mode="wsl")


def test_auto_mode_resolution(sim_nodes):
    assert (
        gen(sim_nodes.get("wsl2"))[0]["devices"][0]["containerEdits"]["deviceNodes"][0]["path"] == "/dev/dxg"
    )
    jetson, _ = gen(sim_nodes.get("jetson-orin"))
    assert "/etc/nv_tegra_release" in {m["containerPath"] for m in jetson["containerEdits"]["mounts"]}


def test_csv_files_ignore_patterns_and_ids(sim_nodes, tmp_path):
    node = sim_nodes.get("jetson-orin")
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "dev, /dev/nvmap\ndev, /dev/missing0\nsym, /usr/lib/aarch64-linux-gnu/libcuda.so\n"
        "sym, /usr/lib/aarch64-linux-gnu/nvidia/libnvidia-nvvm.so.4\n"
    )
    spec, warnings = gen(
        node,
        mode="csv",
        csv_files=[str(csv)],
        csv_ignore_patterns=["**/libnvidia-nvvm*"],
        device_name_strategies=["index"],
        no_all_device=True,
    )
    assert [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]] == ["/dev/nvmap"]
    assert any("/dev/missing0" in w for w in warnings)
    links = parse_hook_argv(spec["containerEdits"]["hooks"][0])[1].link
    assert links == [
        "nvidia/libcuda.so::/usr/lib/aarch64-linux-gnu/libcuda.so",
        "libcuda.so.1.1::/usr/lib/aarch64-linux-gnu/nvidia/libcuda.so",
    ]
    with pytest.raises(GpuctkError, match="MIG"):
        gen(node, mode="csv", device_ids=["0:0"])
    with pytest.raises(GpuctkError, match="single device"):
        gen(node, mode="csv", device_ids=["1"])


def test_procfs_inventory_generation_has_no_mig_uuids(sim_nodes, monkeypatch):
    node = sim_nodes.get("dgx-a100-mig")
    spec, warnings = generate_spec(GenerateOptions(driver_root=node.root, hook_path="/usr/bin/gpuctk-hook"))
    names = {d["name"] for d in spec["devices"]}
    assert "0:0" in names and node.gpus[2]["uuid"] in names
    assert not any(n.startswith("MIG-") for n in names)
    assert any("no UUID known" in w for w in warnings)


def test_transforms_tables():
    spec = {
        "cdiVersion": "0.3.0",
        "kind": "v.com/c",
        "containerEdits": {
            "env": ["A=1", "A=1"],
            "mounts": [
                {"hostPath": "/h/b/c", "containerPath": "/b/c"},
                {"hostPath": "/h/a", "containerPath": "/a"},
            ],
        },
        "devices": [
            {"name": "b", "containerEdits": {"env": ["A=1", "B=2"]}},
            {"name": "a", "containerEdits": {"env": ["A=1"]}},
        ],
    }
    s = simplify(spec)
    assert [d["name"] for d in s["devices"]] == ["a", "b"]
    assert s["devices"][0]["containerEdits"] == {"env": ["A=1"]}  # would be empty: kept
    assert s["devices"][1]["containerEdits"] == {"env": ["B=2"]}
    assert [m["containerPath"] for m in s["containerEdits"]["mounts"]] == ["/a", "/b/c"]
    assert (merged_device(s["devices"]) or {})["containerEdits"]["env"] == ["A=1", "B=2"]
    assert merged_device([{"name": "all", "containerEdits": {}}]) is None


def test_generator_has_no_minimum_version_of_its_own():
    """One minimum-version function: the CDI library's (its rules: tests/cdi/test_version.py)."""
    from gpuctk.generate import build, transform

    assert not hasattr(transform, "minimum_version")
    assert build.minimum_version_of.__module__ == "gpuctk.cdi.version"


def test_transform_root_boundaries():
    spec = {
        "kind": "v/c",
        "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/driver/dev/x"}]}}],
        "containerEdits": {
            "mounts": [
                {"hostPath": "/driver/lib/a", "containerPath": "/driver/lib/a"},
                {"hostPath": "/driver-backup/lib", "containerPath": "/c"},
            ],
            "hooks": [
                {
                    "hookName": "createContainer",
                    "path": "/driver/bin/hook",
                    "args": ["hook", "create-symlinks", "--link", "/driver/a::/driver/b"],
                }
            ],
        },
    }
    host = transform_root(spec, "/driver", "/new")
    assert host["devices"][0]["containerEdits"]["deviceNodes"][0] == {
        "path": "/driver/dev/x",
        "hostPath": "/new/dev/x",
    }
    assert [m["hostPath"] for m in host["containerEdits"]["mounts"]] == ["/new/lib/a", "/driver-backup/lib"]
    assert host["containerEdits"]["hooks"][0]["path"] == "/new/bin/hook"
    assert (
        host["containerEdits"]["hooks"][0]["args"][-1] == "/driver/a::/driver/b"
    )  # container args untouched
    cont = transform_root(spec, "/driver", "/new", "container")
    assert cont["containerEdits"]["mounts"][0]["containerPath"] == "/new/lib/a"
    assert cont["containerEdits"]["hooks"][0]["args"][-1] == "/new/a::/new/b"
    assert cont["containerEdits"]["hooks"][0]["path"] == "/driver/bin/hook"
    assert transform_root(spec, "/x", "/x/") == spec


def test_cli_generate_outputs(sim_nodes, tmp_path, capsys):
    node = sim_nodes.get("dgx-h100")
    base = [
        "cdi",
        "generate",
        "--driver-root",
        node.root,
        "--inventory",
        node.inventory_path,
        "--hook-path",
        "/usr/bin/gpuctk-hook",
    ]
    assert main([*base, "--output", str(tmp_path / "nvidia")]) == 0
    assert yaml.safe_load(pathlib.Path(tmp_path / "nvidia.yaml").read_text())["kind"] == "nvidia.com/gpu"
    assert oct(os.stat(tmp_path / "nvidia.yaml").st_mode & 0o777) == "0o644"
    assert main([*base, "--output", str(tmp_path / "s.json"), "--device-id", "3"]) == 0
    data = json.loads(pathlib.Path(tmp_path / "s.json").read_text())
    assert {d["name"] for d in data["devices"]} == {"3", node.gpus[3]["uuid"], "all"}
    capsys.readouterr()
    assert main([*base, "--format", "json", "--device-id", "0", "--no-all-device"]) == 0
    assert len(json.loads(capsys.readouterr().out)["devices"]) == 2
    assert main([*base, "--device-id", "42"]) == 1
    assert "--device-id 42" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*base, "--mode", "nope"])
    assert exc.value.code == 2


def test_cli_transform_root(sim_nodes, tmp_path, capsys):
    node = sim_nodes.get("dgx-h100")
    out = tmp_path / "s.json"
    assert (
        main(
            [
                "cdi",
                "generate",
                "--driver-root",
                node.root,
                "--inventory",
                node.inventory_path,
                "--output",
                str(out),
                "--device-id",
                "0",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "cdi",
                "transform",
                "root",
                "--from",
                node.root,
                "--to",
                "/run/nvidia/driver",
                "--input",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "/run/nvidia/driver/dev/nvidia0" in text and node.root not in text
    (tmp_path / "bad.yaml").write_text("::: not yaml [")
    assert (
        main(
            ["cdi", "transform", "root", "--from", "/a", "--to", "/b", "--input", str(tmp_path / "bad.yaml")]
        )
        == 1
    )


def test_cli_errors_are_one_line(sim_nodes, tmp_path, capsys):
    assert main(["cdi", "generate", "--driver-root", str(tmp_path / "nothing")]) == 1
    assert "cannot determine the NVIDIA driver version" in capsys.readouterr().err
    node = sim_nodes.get("dgx-h100")
    assert main(["cdi", "generate", "--driver-root", node.root, "-o", "/proc/nope/x.yaml"]) == 1
    err = capsys.readouterr().err
    assert "cannot write spec" in err and "Traceback" not in err
    bad = tmp_path / "inv.json"
    bad.write_text("[1]")
    assert main(["cdi", "generate", "--driver-root", node.root, "--inventory", str(bad)]) == 1
    assert "must be a JSON object" in capsys.readouterr().err


def test_major_mismatch_with_proc_devices_warns(tmp_path):
    from gpuctk.sim import create_node

    node = create_node("dgx-h100", str(tmp_path / "n"))
    path = os.path.join(node.root, "proc/devices")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("510 nvidia-uvm", "511 nvidia-uvm"))
    _spec, warnings = gen(node, device_ids=["0"])
    assert any("nvidia-uvm: major 510 but /proc/devices lists nvidia-uvm as 511" in w for w in warnings)
    assert not any("nvidia0" in w for w in warnings)


def test_mig_gfx_profile_gets_drm_nodes(sim_nodes):
    node = sim_nodes.get("dgx-a100-mig")
    inv = json.loads(pathlib.Path(node.inventory_path).read_text())
    inv["gpus"][0]["mig_devices"][2]["gfx"] = True
    spec, _ = generate_spec(
        GenerateOptions(
            driver_root=node.root,
            inventory=inv,
            hook_path="/usr/bin/gpuctk-hook",
            device_ids=["0:2", "0:3"],
            device_name_strategies=["index"],
            no_all_device=True,
        )
    )
    gfx, plain = spec["devices"]
    assert gfx["name"] == "0:2" and "/dev/dri/card1" in [
        n["path"] for n in gfx["containerEdits"]["deviceNodes"]
    ]
    assert parse_hook_argv(gfx["containerEdits"]["hooks"][0])[0] == "create-symlinks"
    assert not any(n["path"].startswith("/dev/dri") for n in plain["containerEdits"]["deviceNodes"])


_GPU = st.fixed_dictionaries(
    {
        "index": st.integers(0, 3),
        "minor": st.integers(0, 9),
        "uuid": st.sampled_from([None, "GPU-a", "GPU-b", "bad name!"]),
        "pci_bus_id": st.sampled_from([None, "0000:53:00.0", "zz"]),
        "mig_devices": st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.integers(0, 2),
                    "gpu_instance_id": st.integers(0, 14),
                    "compute_instance_id": st.integers(0, 7),
                    "uuid": st.sampled_from([None, "MIG-a"]),
                }
            ),
            max_size=2,
        ),
    }
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(_GPU, max_size=4),
    st.lists(st.sampled_from(["all", "0", "1:0", "GPU-a", "none", "7"]), min_size=1, max_size=2),
)
def test_generation_fuzz_only_gpuctk_errors(sim_nodes, gpus, ids):
    node = sim_nodes.get("dgx-a100-mig")
    try:
        spec, _ = generate_spec(
            GenerateOptions(
                driver_root=node.root,
                inventory={"gpus": gpus},
                device_ids=ids,
                hook_path="/usr/bin/gpuctk-hook",
            )
        )
    except GpuctkError:
        return
    from gpuctk.cdi import validate_spec_dict

    if spec["devices"]:
        assert validate_spec_dict(spec) == []


def test_transform_root_odd_fields_left_alone():
    spec = {
        "kind": "v/c",
        "devices": [
            {
                "name": "x",
                "containerEdits": {
                    "deviceNodes": [{"hostPath": "/a/h"}, {"major": 1}, "junk"],
                    "mounts": [{"containerPath": "/a/c"}, {"hostPath": 7}],
                    "hooks": [
                        {"hookName": "createContainer", "path": "/a/h", "args": "/a/x::/a/y"},
                        {"hookName": "createContainer", "path": "/a/h", "args": ["h", "create-symlinks", 3]},
                        {"hookName": "startContainer", "path": "/a/s", "args": ["s", "/a/t"]},
                    ],
                },
            }
        ],
    }
    for rel in ("host", "container"):
        out = transform_root(spec, "/a", "/b", rel)
        hooks = out["devices"][0]["containerEdits"]["hooks"]
        assert hooks[0]["args"] == "/a/x::/a/y"  # a string is not split into characters
        assert hooks[1]["args"] == ["h", "create-symlinks", 3]
    host = transform_root(spec, "/a", "/b")["devices"][0]["containerEdits"]
    assert host["deviceNodes"][0] == {"hostPath": "/b/h"} and host["deviceNodes"][1] == {"major": 1}
    assert host["mounts"] == [{"containerPath": "/a/c"}, {"hostPath": 7}]
    assert host["hooks"][2] == {"hookName": "startContainer", "path": "/a/s", "args": ["s", "/a/t"]}
    cont = transform_root(spec, "/a", "/b", "container")["devices"][0]["containerEdits"]
    assert cont["mounts"][0] == {"containerPath": "/b/c"}
    assert cont["hooks"][2] == {"hookName": "startContainer", "path": "/b/s", "args": ["s", "/b/t"]}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["/a", "/a/x", "/b", "x::/a/y", ""]),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "path",
                    "hostPath",
                    "containerPath",
                    "args",
                    "hookName",
                    "hooks",
                    "mounts",
                    "deviceNodes",
                    "containerEdits",
                    "devices",
                    "name",
                ]
            ),
            c,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["kind", "devices", "containerEdits"]), _JSON))
def test_transform_root_fuzz_never_crashes(spec):
    for rel in ("host", "container"):
        assert isinstance(transform_root(spec, "/a", "/b", rel), dict)


def test_cli_transform_and_generate_output_to_directory(sim_nodes, tmp_path, capsys):
    node = sim_nodes.get("no-gpu")
    spec = tmp_path / "s.json"
    spec.write_text(
        json.dumps(
            {
                "cdiVersion": "0.5.0",
                "kind": "a.com/b",
                "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"hostPath": "/x"}]}}],
            }
        )
    )
    capsys.readouterr()
    rc = main(
        [
            "cdi",
            "transform",
            "root",
            "--from",
            "/a",
            "--to",
            "/b",
            "--relative-to",
            "container",
            "--input",
            str(spec),
        ]
    )
    err = capsys.readouterr().err
    assert rc in (0, 1) and "internal error" not in err
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    assert (
        main(
            [
                "cdi",
                "transform",
                "root",
                "--from",
                "/a",
                "--to",
                "/b",
                "--input",
                str(spec),
                "--output",
                str(outdir),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("gpuctk: error:") and err.count("\n") == 1
    assert (
        main(
            [
                "cdi",
                "generate",
                "--driver-root",
                node.root,
                "--inventory",
                node.inventory_path,
                "--mode",
                "management",
                "--output",
                str(outdir),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("gpuctk: error:") and err.count("\n") == 1
    assert os.listdir(outdir) == [] and not (tmp_path / "outdir.yaml").exists()
