"""The specs gpuctk itself produces pass the gVisor check with the sandbox setting, and fail it
(with the specific rules) without: `cdi generate` output on simulated nodes, and the runtime shim's
cdi, jit-cdi, csv and legacy modes (real ``modify_spec`` with a Host whose CDI edge is swapped for
the simulated node)."""

from __future__ import annotations

import gvisor_fixtures as fx
import pytest
from gvisor_inject import inject

from gpuctk.config.load import default_config_typed
from gpuctk.config.types import ConfigDict
from gpuctk.generate import GenerateOptions, generate_spec
from gpuctk.runtime.host import Host
from gpuctk.runtime.log import Logger
from gpuctk.runtime.modify import modify_spec
from gpuctk.sandbox.gvisor import analyze, runsc_ready_cdi_spec
from gpuctk.sim import create_node


@pytest.fixture(scope="module")
def h100(tmp_path_factory):
    node = create_node("dgx-h100", str(tmp_path_factory.mktemp("gv-h100")))
    return node


@pytest.fixture(scope="module")
def orin(tmp_path_factory):
    return create_node("jetson-orin", str(tmp_path_factory.mktemp("gv-orin")))


def generate(node, mode: str, ids: list[str] | None = None) -> dict:
    opts = GenerateOptions(
        mode=mode,
        driver_root=node.driver_root,
        dev_root=node.dev_root,
        inventory=node.inventory_path,
        device_ids=ids or ["all"],
    )
    spec, _ = generate_spec(opts)
    return spec


def _fails(report):
    return sorted(f.rule for f in report.findings if f.status == "fail")


# ---------------------------------------------------------------- `gpuctk cdi generate` output


@pytest.mark.parametrize("device", ["0", "all"])
def test_generated_h100_spec_passes_after_runsc_ready(h100, device):
    spec = generate(h100, "nvml")
    ready, warnings = runsc_ready_cdi_spec(spec)
    assert any("/run/nvidia-persistenced/socket" in w for w in warnings)
    assert any("/dev/nvidia-modeset" in w for w in warnings)
    oci = inject(fx._base(["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=" + device]), ready, [device])
    report = analyze(oci, h100.driver_version)
    assert report.flow == "cdi" and report.gpu_detected and not report.runs_nvidia_container_cli
    assert _fails(report) == []


def test_generated_h100_spec_without_runsc_ready_reports_the_specific_failures(h100):
    oci = inject(fx._base(["NVIDIA_VISIBLE_DEVICES=all"]), generate(h100, "nvml"), ["0"])
    report = analyze(oci, h100.driver_version)
    assert _fails(report) == ["C5", "D4"]
    statuses = {f.rule: f.status for f in report.findings}
    assert statuses["C4"] == "warn"


def test_generated_orin_spec_after_runsc_ready(orin):
    spec = generate(orin, "csv")
    ready, warnings = runsc_ready_cdi_spec(spec)
    assert any("/dev/nvhost" in w for w in warnings)
    name = ready["devices"][0]["name"]
    oci = inject(fx._base(["NVIDIA_VISIBLE_DEVICES=0"]), ready, [name])
    report = analyze(oci, orin.driver_version)
    assert report.flow == "csv"
    # The simulated Orin is nvgpu-based (L4T driver 540.4.0, no /dev/nvidiactl): nvproxy cannot serve
    # it. The check says exactly that (no GPU signal, driver not on the list, no nvidiactl) instead of
    # passing; everything runsc_ready can fix (sockets, nvgpu nodes, hooks, env) is fixed.
    assert _fails(report) == ["C1", "C3", "D1", "S2"]
    assert "C5" not in _fails(report) and "D2" not in _fails(report) and "D4" not in _fails(report)


# ---------------------------------------------------------------- the runtime shim's modes


class SimHost(Host):
    """The shim's Host with its CDI edge served from a simulated node."""

    def __init__(self, cfg: ConfigDict, node, profile_mode: str) -> None:
        super().__init__(cfg)
        self.node = node
        self.profile_mode = profile_mode

    def inject_registry_devices(self, oci_spec, names, spec_dirs):
        spec = generate(self.node, self.profile_mode)
        bare = [n.split("=", 1)[1] for n in names]
        new = inject(oci_spec, spec, bare)
        oci_spec.clear()
        oci_spec.update(new)
        return names

    def jit_spec(self, mode, ids, csv_all=False):
        return generate(self.node, self.profile_mode if mode == "auto" else mode, ids)

    def apply_cdi_spec(self, oci_spec, cdi_spec, source):
        names = [d["name"] for d in cdi_spec["devices"] if d["name"] != "all"][:1]
        new = inject(oci_spec, cdi_spec, names)
        oci_spec.clear()
        oci_spec.update(new)
        return names

    def apply_edits(self, oci_spec, edits):
        new = inject(oci_spec, {"devices": [], "containerEdits": edits}, [])
        oci_spec.clear()
        oci_spec.update(new)

    def legacy_hook_path(self):
        return "/usr/local/bin/gpuctk-runtime-hook"

    def cdi_hook_path(self):
        return "/usr/local/bin/gpuctk-hook"


def run_shim(node, mode: str, env: list[str], sandbox: str, profile_mode: str = "nvml") -> dict:
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = mode
    cfg["nvidia-container-runtime"]["sandbox"] = sandbox
    spec = fx._base(env)
    host = SimHost(cfg, node, profile_mode)
    assert modify_spec(spec, cfg, host, Logger()) == mode
    return spec


@pytest.mark.parametrize(
    "mode, env",
    [
        ("cdi", ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]),
        ("jit-cdi", ["NVIDIA_VISIBLE_DEVICES=0"]),
    ],
)
def test_shim_modes_pass_with_the_sandbox_setting(h100, mode, env):
    spec = run_shim(h100, mode, env, "gvisor")
    report = analyze(spec, h100.driver_version)
    assert report.flow == "cdi" and report.gpu_detected
    assert _fails(report) == []
    nvd = [e for e in spec["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES=")]
    assert nvd == ["NVIDIA_VISIBLE_DEVICES=void"]
    assert all(h["path"].endswith("/nvidia-cdi-hook") for h in spec["hooks"]["createContainer"])


@pytest.mark.parametrize(
    "mode, env",
    [
        ("cdi", ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]),
        ("jit-cdi", ["NVIDIA_VISIBLE_DEVICES=0"]),
    ],
)
def test_shim_modes_without_the_sandbox_setting_fail_specifically(h100, mode, env):
    report = analyze(run_shim(h100, mode, env, ""), h100.driver_version)
    assert _fails(report) == ["C5", "D4"]


def test_shim_csv_mode_with_the_sandbox_setting(orin):
    spec = run_shim(orin, "csv", ["NVIDIA_VISIBLE_DEVICES=0"], "gvisor", profile_mode="csv")
    report = analyze(spec, orin.driver_version)
    assert report.flow == "csv" and not report.runs_nvidia_container_cli
    assert _fails(report) == [
        "C1",
        "C3",
        "D1",
        "S2",
    ]  # nvgpu Orin: see test_generated_orin_spec_after_runsc_ready


def test_shim_legacy_mode_produces_the_l1_hook(h100):
    spec = run_shim(h100, "legacy", ["NVIDIA_VISIBLE_DEVICES=0"], "gvisor")
    (hook,) = spec["hooks"]["prestart"]
    assert hook["path"] == "/usr/local/bin/nvidia-container-runtime-hook"
    assert hook["args"] == ["nvidia-container-runtime-hook", "prestart"]
    assert hook["env"][0].startswith("PATH=/")  # the shim gives every hook an explicit env
    report = analyze(spec, h100.driver_version)
    assert report.flow == "legacy" and report.gpu_detected and _fails(report) == []


def test_shim_legacy_mode_without_the_sandbox_setting_fails_l1(h100):
    spec = run_shim(h100, "legacy", ["NVIDIA_VISIBLE_DEVICES=0"], "")
    report = analyze(spec, h100.driver_version)
    assert "L1" in _fails(report) and not report.gpu_detected


def test_real_cdi_registry_injection_of_the_ready_spec_passes(h100):
    """The CDI library (gpuctk.cdi) replaces the container's NVIDIA_VISIBLE_DEVICES with the spec's void."""
    from gpuctk.cdi import Registry, Spec

    ready, _ = runsc_ready_cdi_spec(generate(h100, "nvml"))
    oci = fx._base(["NVIDIA_VISIBLE_DEVICES=all"])
    Registry(spec_dirs=[], specs=[Spec.from_dict(ready)]).inject_devices(oci, ["nvidia.com/gpu=0"])
    assert [e for e in oci["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES=")] == [
        "NVIDIA_VISIBLE_DEVICES=void"
    ]
    report = analyze(oci, h100.driver_version)
    assert report.flow == "cdi" and report.gpu_detected and _fails(report) == []
    assert sorted(d["path"] for d in oci["linux"]["devices"]) == [
        "/dev/nvidia-uvm",
        "/dev/nvidia0",
        "/dev/nvidiactl",
    ]
