"""runsc-ready producers: CDI specs (`cdi generate --sandbox gvisor`) and OCI specs (shim sandbox mode)."""

from __future__ import annotations

import copy
import json

import gvisor_fixtures as fx
import pytest
from gvisor_inject import inject

from gpuctk.errors import GpuctkError
from gpuctk.sandbox.gvisor import analyze, check_spec, runsc_ready_cdi_spec, runsc_ready_oci_spec

DRV = fx.DRIVER
LIB = fx.LIB


def _node(path, major, minor, gid=None, mode=438):
    n = {"path": path, "major": major, "minor": minor, "fileMode": mode, "permissions": "rwm"}
    if gid is not None:
        n["gid"] = gid
    return n


def _m(path, opts=("ro", "nosuid", "nodev", "rbind", "rprivate")):
    return {"hostPath": path, "containerPath": path, "options": list(opts)}


def _h(name, *args, path="/usr/bin/nvidia-ctk"):
    return {
        "hookName": "createContainer",
        "path": path,
        "args": ["nvidia-ctk", "hook", name, *args],
        "env": ["NVIDIA_CTK_DEBUG=false"],
    }


def toolkit_cdi_spec() -> dict:
    """The shape `nvidia-ctk cdi generate` emits (nvidia-container-toolkit.md §4.3–4.7), one GPU + all."""
    gpu0 = {
        "deviceNodes": [
            _node("/dev/nvidia0", 195, 0),
            _node("/dev/dri/card1", 226, 1, gid=44, mode=432),
            _node("/dev/dri/renderD128", 226, 128, gid=105, mode=432),
        ],
        "additionalGids": [44, 105],
        "hooks": [
            _h(
                "create-symlinks",
                "--link",
                "../card1::/dev/dri/by-path/pci-0000:53:00.0-card",
                "--link",
                "../renderD128::/dev/dri/by-path/pci-0000:53:00.0-render",
            )
        ],
    }
    mig = {
        "deviceNodes": [
            _node("/dev/nvidia1", 195, 1),
            _node("/dev/nvidia-caps/nvidia-cap21", 508, 21),
            _node("/dev/nvidia-caps/nvidia-cap22", 508, 22),
        ]
    }
    return {
        "cdiVersion": "0.7.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": "0", "containerEdits": gpu0},
            {"name": "1:0", "containerEdits": mig},
            {
                "name": "all",
                "containerEdits": {
                    "deviceNodes": gpu0["deviceNodes"] + mig["deviceNodes"],
                    "additionalGids": [44, 105],
                    "hooks": copy.deepcopy(gpu0["hooks"]),
                },
            },
        ],
        "containerEdits": {
            "env": [f"NVIDIA_CTK_LIBCUDA_DIR={LIB}", "NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [
                _node("/dev/nvidia-modeset", 195, 254),
                _node("/dev/nvidia-uvm", 510, 0),
                _node("/dev/nvidia-uvm-tools", 510, 1),
                _node("/dev/nvidiactl", 195, 255),
            ],
            "mounts": [
                _m(f"{LIB}/libcuda.so.{DRV}"),
                _m(f"{LIB}/libnvidia-ml.so.{DRV}"),
                _m("/run/nvidia-persistenced/socket", ("nosuid", "nodev", "rbind", "rprivate", "noexec")),
                _m("/run/nvidia-fabricmanager/socket", ("nosuid", "nodev", "rbind", "rprivate", "noexec")),
                _m("/usr/bin/nvidia-smi"),
            ],
            "hooks": [
                _h("create-symlinks", "--link", f"libcuda.so.1::{LIB}/libcuda.so"),
                _h("enable-cuda-compat", f"--host-driver-version={DRV}"),
                _h("update-ldcache", "--folder", LIB),
                _h("disable-device-node-modification"),
                _h("update-application-profile"),
            ],
        },
    }


def container(nvd: str = "all") -> dict:
    spec = fx._base([f"NVIDIA_VISIBLE_DEVICES={nvd}"])
    spec["annotations"] = {"cdi.k8s.io/gpu": "nvidia.com/gpu=0"}
    return spec


def _all_edits(spec):
    yield spec["containerEdits"]
    for d in spec["devices"]:
        yield d["containerEdits"]


def _statuses(findings):
    return {f.rule: f.status for f in findings}


def test_ready_cdi_spec_meets_the_contract():
    original = toolkit_cdi_spec()
    before = json.dumps(original, sort_keys=True)
    spec, warnings = runsc_ready_cdi_spec(original)
    assert json.dumps(original, sort_keys=True) == before, "the input must not be modified"
    nodes = [n["path"] for e in _all_edits(spec) for n in e.get("deviceNodes", [])]
    assert set(nodes) <= {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1"}
    mounts = [m["containerPath"] for e in _all_edits(spec) for m in e.get("mounts", [])]
    assert not [m for m in mounts if m.endswith("socket")]
    hooks = [h for e in _all_edits(spec) for h in e.get("hooks", [])]
    assert hooks and all(
        h["path"] == "/usr/bin/nvidia-cdi-hook" and h["args"][0] == "nvidia-cdi-hook" for h in hooks
    )
    assert all(h["args"][1] != "hook" for h in hooks)
    names = [h["args"][1] for h in hooks]
    assert "disable-device-node-modification" not in names
    assert names.count("create-symlinks") == 1, "the /dev/dri/by-path links go with their DRM nodes"
    assert spec["containerEdits"]["env"] == [f"NVIDIA_CTK_LIBCUDA_DIR={LIB}", "NVIDIA_VISIBLE_DEVICES=void"]
    assert [d["name"] for d in spec["devices"]] == ["0", "all"]
    assert "additionalGids" not in spec["devices"][0]["containerEdits"]
    text = "\n".join(warnings)
    for dropped in (
        "/dev/dri/card1",
        "/dev/dri/renderD128",
        "/dev/nvidia-modeset",
        "/dev/nvidia-uvm-tools",
        "/run/nvidia-persistenced/socket",
        "/run/nvidia-fabricmanager/socket",
        "1:0",
        "disable-device-node-modification",
        "/usr/bin/nvidia-cdi-hook",
    ):
        assert dropped in text, dropped


def test_ready_cdi_spec_is_idempotent():
    once, _ = runsc_ready_cdi_spec(toolkit_cdi_spec())
    twice, warnings = runsc_ready_cdi_spec(once)
    assert twice == once and warnings == []


def test_container_with_ready_spec_passes_the_check():
    spec, _ = runsc_ready_cdi_spec(toolkit_cdi_spec())
    oci = inject(container("nvidia.com/gpu=0"), spec, ["0"])
    assert oci["process"]["env"].count("NVIDIA_VISIBLE_DEVICES=void") == 1
    assert not [
        e for e in oci["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES=") and e.endswith("=0")
    ]
    report = analyze(oci, DRV)
    assert report.flow == "cdi" and report.gpu_detected and not report.runs_nvidia_container_cli
    assert not report.failed, [f for f in report.findings if f.status == "fail"]
    st = _statuses(report.findings)
    assert st["C4"] == st["C5"] == st["D2"] == st["D4"] == st["D1"] == "pass"


def test_container_with_the_plain_toolkit_spec_reports_the_specific_failures():
    oci = inject(container("nvidia.com/gpu=0"), toolkit_cdi_spec(), ["0"])
    st = _statuses(check_spec(oci, DRV))
    assert st["C5"] == "fail"  # persistenced / fabricmanager sockets
    assert st["D4"] == "fail"  # disable-device-node-modification through nvidia-ctk
    assert st["C4"] == "warn"  # modeset, uvm-tools, DRM nodes
    assert st["D2"] == "pass"  # nvidia-ctk is not recognised as the CDI hook: no leak, but D4 bites


def test_appending_engine_leaks_and_the_shim_fix_closes_it():
    ready, _ = runsc_ready_cdi_spec(toolkit_cdi_spec())
    oci = inject(container("all"), ready, ["0"], append_env=True)
    assert [e for e in oci["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES")] == [
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_VISIBLE_DEVICES=void",
    ]
    d2 = next(f for f in check_spec(oci, DRV) if f.rule == "D2")
    assert d2.status == "fail" and "--device=all" in d2.reason
    warnings = runsc_ready_oci_spec(oci)
    assert any("replaced by a single NVIDIA_VISIBLE_DEVICES=void" in w for w in warnings)
    assert [e for e in oci["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES")] == [
        "NVIDIA_VISIBLE_DEVICES=void"
    ]
    assert not analyze(oci, DRV).failed


def test_only_mig_devices_left_is_an_error():
    spec = toolkit_cdi_spec()
    spec["devices"] = [d for d in spec["devices"] if d["name"] == "1:0"]
    with pytest.raises(GpuctkError, match="no device nvproxy can serve"):
        runsc_ready_cdi_spec(spec)


def test_hook_path_override():
    spec, _ = runsc_ready_cdi_spec(toolkit_cdi_spec(), cdi_hook_path="/opt/gpuctk/bin/nvidia-cdi-hook")
    assert {h["path"] for e in _all_edits(spec) for h in e.get("hooks", [])} == {
        "/opt/gpuctk/bin/nvidia-cdi-hook"
    }


def test_gpuctk_hook_shape_is_rewritten_too():
    spec = toolkit_cdi_spec()
    for h in spec["containerEdits"]["hooks"]:
        h["path"] = "/usr/local/bin/gpuctk-hook"
        h["args"] = ["gpuctk-hook", *h["args"][2:]]
    ready, _ = runsc_ready_cdi_spec(spec)
    hooks = ready["containerEdits"]["hooks"]
    assert next(h["args"][:2] for h in hooks) == ["nvidia-cdi-hook", "create-symlinks"]
    assert {h["path"] for h in hooks} == {"/usr/local/bin/nvidia-cdi-hook"}


# ---------------------------------------------------------------- OCI specs (shim sandbox mode)


def test_oci_legacy_alias_becomes_the_l1_hook():
    spec = fx.legacy_flow()
    spec["hooks"]["prestart"] = [
        {"path": "/usr/local/bin/gpuctk-runtime-hook", "args": ["gpuctk-runtime-hook", "prestart"]},
        {"path": "/usr/bin/other", "args": ["other"]},
    ]
    assert _statuses(check_spec(spec, DRV))["L1"] == "fail"
    warnings = runsc_ready_oci_spec(spec)
    assert spec["hooks"]["prestart"][0] == {
        "path": "/usr/local/bin/nvidia-container-runtime-hook",
        "args": ["nvidia-container-runtime-hook", "prestart"],
    }
    assert spec["hooks"]["prestart"][1]["path"] == "/usr/bin/other"
    assert any("renamed" in w for w in warnings)
    report = analyze(spec, DRV)
    assert report.flow == "legacy" and report.gpu_detected and not report.failed


def test_oci_legacy_cuda_image_gets_an_explicit_request():
    spec = fx._env(fx.legacy_flow(), "CUDA_VERSION=11.0.3", drop="NVIDIA_VISIBLE_DEVICES")
    runsc_ready_oci_spec(spec)
    assert "NVIDIA_VISIBLE_DEVICES=all" in spec["process"]["env"]
    assert _statuses(check_spec(spec, DRV))["L2"] == "pass"


def test_oci_malformed_env_is_dropped():
    spec = fx._env(fx.legacy_flow(), "DEBUG")
    warnings = runsc_ready_oci_spec(spec)
    assert "DEBUG" not in spec["process"]["env"] and any("DEBUG" in w for w in warnings)
    assert _statuses(check_spec(spec, DRV))["C6"] == "pass"


def test_oci_ready_is_idempotent_and_keeps_unknown_fields():
    spec = inject(container(), toolkit_cdi_spec(), ["0"])
    spec["x-vendor-extension"] = {"keep": True}
    runsc_ready_oci_spec(spec)
    once = copy.deepcopy(spec)
    assert runsc_ready_oci_spec(spec) == []
    assert spec == once and spec["x-vendor-extension"] == {"keep": True}
    assert not analyze(spec, DRV).failed


def test_oci_spec_without_gpu_is_untouched():
    spec = fx._base(["FOO=bar"])
    before = copy.deepcopy(spec)
    assert runsc_ready_oci_spec(spec) == []
    assert spec == before


def test_oci_user_socket_mount_is_kept_with_a_warning():
    spec = fx.cdi_flow()
    spec["mounts"].append(
        {
            "destination": "/var/run/docker.sock",
            "source": "/var/run/docker.sock",
            "type": "bind",
            "options": ["rbind"],
        }
    )
    warnings = runsc_ready_oci_spec(spec)
    assert any("/var/run/docker.sock" in w and "--host-uds" in w for w in warnings)
    assert spec["mounts"][-1]["destination"] == "/var/run/docker.sock"


def test_oci_mig_nodes_are_not_silently_turned_into_a_full_gpu():
    spec = fx._add_dev(fx.cdi_flow(), fx._dev("/dev/nvidia-caps/nvidia-cap21", 508, 21))
    warnings = runsc_ready_oci_spec(spec)
    assert any("MIG" in w for w in warnings)
    assert _statuses(check_spec(spec, DRV))["C4"] == "fail"
