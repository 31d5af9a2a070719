"""Tests written against the mutants of gpuctk.runtime.modify that the rest of the suite let live.

They pin what the shim does and what it says it did (its log lines are what an operator reads
when a container misbehaves). docs/testing.md lists the run (mutmut) and the mutants left alive
on purpose. Upstream: NVIDIA/nvidia-container-toolkit ``internal/runtime/runtime_factory.go`` and
``internal/modifier/``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import pytest
from test_modify import FakeHost, spec

from gpuctk.config import default_config
from gpuctk.config.types import ConfigDict
from gpuctk.runtime.host import ModifyError
from gpuctk.runtime.log import Logger
from gpuctk.runtime.modify import Modifier, modify_spec, parse_jit_requests
from gpuctk.runtime.platform import StaticProbes


class RecordingHost(FakeHost):
    """FakeHost that also keeps the CDI spec handed to apply_cdi_spec and can report devices."""

    def __init__(self, cfg, probes=None, applied=()):
        super().__init__(cfg, probes)
        self.applied = list(applied)
        self.cdi_specs: list = []

    def apply_cdi_spec(self, oci_spec, cdi_spec, source):
        super().apply_cdi_spec(oci_spec, cdi_spec, source)
        self.cdi_specs.append(cdi_spec)
        return self.applied


def _log(tmp_path) -> tuple[Logger, Callable[[], list[str]]]:
    log = Logger()
    path = tmp_path / "shim.log"
    log.configure(str(path), "debug")

    def lines() -> list[str]:
        log.close()
        return [line.split('msg="', 1)[-1].rstrip('"') for line in path.read_text().splitlines()]

    return log, lines


def _cfg(mode: str = "auto", **legacy) -> ConfigDict:
    cfg = default_config()
    cfg["nvidia-container-runtime"]["mode"] = mode
    cfg["nvidia-container-runtime"]["modes"]["legacy"].update(legacy)
    return cast("ConfigDict", cfg)  # default_config() fills in every key of the shape


# ------------------------------------------------------------------ parse_jit_requests
def test_an_id_keeps_everything_after_its_first_equals_sign():
    assert parse_jit_requests(["mode=csv,id=a=b"]) == [("csv", ["a=b"])]


def test_a_request_without_mode_is_refused_by_name():
    with pytest.raises(ModifyError) as e:
        parse_jit_requests(["id=0"])
    assert str(e.value) == "invalid automatic CDI request 'id=0'"


# ------------------------------------------------------------------ apply_jit
@pytest.mark.parametrize("mode", ["auto", "csv"])
def test_auto_and_csv_requests_without_ids_mean_all(tmp_path, mode):
    cfg = _cfg()
    host = RecordingHost(cfg)
    log, _ = _log(tmp_path)
    req = "runtime.nvidia.com/gpu=" if mode == "auto" else "mode=csv"
    Modifier(cfg, host, log).apply_jit(spec(), [req])
    assert host.calls[0] == ("jit", mode, ["all"])


def test_apply_jit_hands_the_generated_spec_on_and_says_what_it_injected(tmp_path):
    cfg = _cfg()
    log, lines = _log(tmp_path)
    host = RecordingHost(cfg, applied=["runtime.nvidia.com/gpu=0", "runtime.nvidia.com/gpu=1"])
    Modifier(cfg, host, log).apply_jit(spec(), ["mode=gds"])
    assert host.cdi_specs == [{"cdiVersion": "0.5.0", "kind": "runtime.nvidia.com/gpu", "devices": []}]
    host.applied = []
    Modifier(cfg, host, log).apply_jit(spec(), ["mode=mofed"])
    assert lines() == [
        "Injected generated CDI devices for mode=gds: runtime.nvidia.com/gpu=0, runtime.nvidia.com/gpu=1",
        "Injected generated CDI devices for mode=mofed: (common edits)",
    ]


# ------------------------------------------------------------------ cdi mode
def test_cdi_mode_logs_removed_hooks_and_injected_devices(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("cdi")
    s = spec(
        ["NVIDIA_VISIBLE_DEVICES=0,1"],
        hooks={"prestart": [{"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["x", "prestart"]}]},
    )
    assert modify_spec(s, cfg, FakeHost(cfg), log) == "cdi"
    assert "Removed 1 NVIDIA prestart hook(s)" in lines()
    assert "Injected CDI devices: nvidia.com/gpu=0, nvidia.com/gpu=1" in lines()


def test_auto_mode_keeps_annotation_requests_and_says_what_it_chose(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("auto")
    s = spec(annotations={"cdi.k8s.io/x": "nvidia.com/gpu=0"})
    host = FakeHost(cfg)
    assert modify_spec(s, cfg, host, log) == "cdi"
    assert host.calls[0][:2] == ("registry", ["nvidia.com/gpu=0"])
    assert "Auto-detected mode as 'cdi'" in lines()


def test_an_explicit_mode_does_not_log_auto_detection(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("cdi")
    assert modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, FakeHost(cfg), log) == "cdi"
    assert not any(line.startswith("Auto-detected") for line in lines())


def test_pass_through_says_why(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("jit-cdi")
    assert modify_spec(spec(), cfg, FakeHost(cfg), log) is None
    s = spec(annotations={"cdi.k8s.io/x": "nvidia.com/gpu=0"})
    cfg = _cfg("auto")
    # auto with a request that is not a CDI name only in annotations: jit-cdi, annotations dropped
    s["annotations"]["cdi.k8s.io/y"] = "0"
    assert modify_spec(s, cfg, FakeHost(cfg), log) is None
    assert lines()[0] == "No GPU requested; passing the spec through unchanged"
    assert "No GPU requested outside annotations; passing the spec through unchanged" in lines()


def test_imex_channels_alone_are_a_request_outside_cdi_mode():
    cfg = _cfg("jit-cdi")
    host = FakeHost(cfg)
    s = spec(["NVIDIA_IMEX_CHANNELS=3"])
    assert modify_spec(s, cfg, host, Logger()) == "jit-cdi"


def test_request_warnings_reach_the_log(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("jit-cdi")
    cfg["accept-nvidia-visible-devices-as-volume-mounts"] = True
    s = spec(["NVIDIA_VISIBLE_DEVICES=1"])
    s["mounts"] = [
        {"destination": f"/var/run/nvidia-container-devices/{d}", "source": "/dev/null"}
        for d in ("0", "cdi/bogus")
    ]
    assert modify_spec(s, cfg, FakeHost(cfg), log) == "jit-cdi"
    assert "ignoring invalid CDI device request 'cdi/bogus' in volume mounts" in lines()


def test_an_unknown_mode_is_named():
    cfg = _cfg("auto")
    with pytest.raises(ModifyError) as e:
        modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, FakeHost(cfg), Logger(), "bogus")
    assert str(e.value) == "invalid runtime mode 'bogus'"


def test_gvisor_notes_are_logged(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("jit-cdi")
    cfg["nvidia-container-runtime"]["sandbox"] = "gvisor"
    modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, FakeHost(cfg), log)
    assert "gvisor: checked" in lines()


# ------------------------------------------------------------------ feature-gated (legacy, csv)
COMPAT = {
    "hookName": "createContainer",
    "path": "/usr/bin/nvidia-ctk",
    "args": ["nvidia-ctk", "hook", "enable-cuda-compat", "--host-driver-version=550.54.15"],
    "env": ["NVIDIA_CTK_DEBUG=false"],
}


def test_legacy_mode_adds_the_cuda_compat_hook_exactly(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("legacy", **{"cuda-compat-mode": "hook"})
    host = FakeHost(cfg)
    assert modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, host, log) == "legacy"
    assert ("edits", {"hooks": [COMPAT]}) in host.calls
    assert "Added prestart hook /opt/gpuctk/bin/gpuctk-runtime-hook" in lines()


def test_csv_mode_never_adds_the_cuda_compat_hook_but_applies_gated_devices():
    cfg = _cfg("csv", **{"cuda-compat-mode": "hook"})
    host = FakeHost(cfg)
    s = spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GDS=enabled"])
    assert modify_spec(s, cfg, host, Logger()) == "csv"
    assert not any(c[0] == "edits" for c in host.calls)
    assert "JIT=<generated mode=gds>" in s["process"]["env"]


def test_unknown_driver_version_is_a_warning_not_a_hook(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("legacy", **{"cuda-compat-mode": "hook"})
    host = FakeHost(cfg)
    host.driver_version = lambda: ""
    modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, host, log)
    assert not any(c[0] == "edits" for c in host.calls)
    assert "cuda-compat-mode = hook: host driver version unknown; no enable-cuda-compat hook" in lines()


def test_csv_requirements_unchecked_without_libcuda_are_a_warning(tmp_path):
    log, lines = _log(tmp_path)
    cfg = _cfg("csv")
    host = FakeHost(cfg, StaticProbes(tegra=True))
    host.cuda_properties = lambda: {}
    modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=11"]), cfg, host, log)
    assert "NVIDIA_REQUIRE_* not checked: libcuda.so.1 is not available" in lines()


# ------------------------------------------------------------------ graphics (legacy)
GPUS = [
    {"minor": "0", "uuid": "GPU-a", "bus_id": "0000:1A:00.0"},
    {"minor": "1", "uuid": "GPU-b", "bus_id": "0000:3B:00.0"},
]


def _graphics(tmp_path, env: list[str]):
    log, lines = _log(tmp_path)
    cfg = _cfg("legacy")
    host = FakeHost(cfg)
    host.gpus = copy.deepcopy(GPUS)
    modify_spec(spec(env), cfg, host, log)
    return [c[1] for c in host.calls if c[0] == "edits"], lines()


DRM = {
    "deviceNodes": [{"path": "/dev/dri/card1"}, {"path": "/dev/dri/renderD128"}],
    "hooks": [
        {
            "hookName": "createContainer",
            "path": "/usr/bin/nvidia-ctk",
            "args": [
                "nvidia-ctk",
                "hook",
                "create-symlinks",
                "--link=../card1::/dev/dri/by-path/pci-0000:3b:00.0-card",
                "--link=../renderD128::/dev/dri/by-path/pci-0000:3b:00.0-render",
            ],
            "env": ["NVIDIA_CTK_DEBUG=false"],
        }
    ],
}


@pytest.mark.parametrize(
    "visible",
    ["1", "GPU-b", "0000:3B:00.0", "0000:3b:00.0", "all", "0,1"],
)
@pytest.mark.parametrize("cap", ["graphics", "display"])
def test_graphics_adds_the_drm_nodes_of_the_visible_gpus(tmp_path, visible, cap):
    edits, lines = _graphics(
        tmp_path, [f"NVIDIA_VISIBLE_DEVICES={visible}", f"NVIDIA_DRIVER_CAPABILITIES={cap}"]
    )
    assert edits == [DRM]
    assert "Added DRM devices for graphics: /dev/dri/card1, /dev/dri/renderD128" in lines


def test_graphics_skips_gpus_that_are_not_visible(tmp_path):
    edits, _ = _graphics(tmp_path, ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=graphics"])
    assert edits == []
