"""Property tests: the checker never crashes on odd specs, and the OCI producer is idempotent and
always removes what it promises to remove."""

from __future__ import annotations

import copy

import gvisor_fixtures as fx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuctk.sandbox.gvisor import analyze, runsc_ready_oci_spec

NVD_VALUES = st.sampled_from(
    ["all", "void", "none", "", "0", "0,1", "GPU-abc", "MIG-xyz", "1:0", "nvidia.com/gpu=0"]
)
ENV_ENTRY = st.one_of(
    NVD_VALUES.map(lambda v: "NVIDIA_VISIBLE_DEVICES=" + v),
    st.sampled_from(
        [
            "NVIDIA_DRIVER_CAPABILITIES=all",
            "NVIDIA_DRIVER_CAPABILITIES=graphics",
            "CUDA_VERSION=12.0",
            "MALFORMED",
            "=x",
            "PATH=/bin",
        ]
    ),
    st.text(max_size=12),
)
DEV_PATH = st.sampled_from(
    [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia0",
        "/dev/nvidia300",
        "/dev/nvidia-modeset",
        "/dev/nvidia-caps/nvidia-cap3",
        "/dev/dri/card1",
        "/dev/nvhost-gpu",
        "/dev/fuse",
    ]
)
HOOK_PATH = st.sampled_from(
    [
        "/usr/bin/nvidia-cdi-hook",
        "/usr/bin/nvidia-ctk",
        "/usr/local/bin/gpuctk-hook",
        "/usr/bin/nvidia-container-runtime-hook",
        "/usr/bin/nvidia-container-toolkit",
        "relative-hook",
        "/bin/true",
    ]
)
HOOK_NAME = st.sampled_from(
    ["create-symlinks", "update-ldcache", "disable-device-node-modification", "chmod"]
)
MOUNT = st.sampled_from(
    ["/run/nvidia-persistenced/socket", "/usr/lib/libcuda.so.1", "/var/run/app.sock", "/etc/nv_tegra_release"]
)


@st.composite
def specs(draw):
    spec = fx._base(draw(st.lists(ENV_ENTRY, max_size=6)))
    spec["linux"]["devices"] = [fx._dev(p, 195, 0) for p in draw(st.lists(DEV_PATH, max_size=5))]
    hooks = {}
    for stage in ("prestart", "createContainer"):
        hs = []
        for path, name in draw(st.lists(st.tuples(HOOK_PATH, HOOK_NAME), max_size=3)):
            base = path.rsplit("/", 1)[-1]
            args = [base, "hook", name] if base == "nvidia-ctk" else [base, name]
            hs.append({"path": path, "args": args})
        hooks[stage] = hs
    spec["hooks"] = hooks
    spec["mounts"] += [fx._bind(m) for m in draw(st.lists(MOUNT, max_size=3))]
    if draw(st.booleans()):
        spec["annotations"] = {"io.kubernetes.cri.container-type": "container"}
    return spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.sampled_from([None, "580.105.08", "1.2.3", ""]))
def test_analyze_never_crashes(spec, driver):
    before = copy.deepcopy(spec)
    report = analyze(spec, driver or None)
    assert spec == before
    assert report.flow in ("legacy", "cdi", "csv", "unknown", "none")
    assert all(f.status in ("pass", "warn", "fail") and f.reason for f in report.findings)
    assert len({f.rule for f in report.findings}) == len(report.findings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_oci_ready_is_idempotent_and_removes_what_it_promises(spec):
    runsc_ready_oci_spec(spec)
    once = copy.deepcopy(spec)
    runsc_ready_oci_spec(spec)
    assert spec == once
    report = analyze(spec, "580.105.08")
    status = {f.rule: f.status for f in report.findings}
    if report.flow in ("cdi", "csv"):
        assert status.get("C5") != "fail" or any("app.sock" in str(m) for m in spec["mounts"])
        assert status.get("C6") == "pass"
        assert status.get("D2") == "pass"
        assert status.get("D4") == "pass"
        assert [e for e in spec["process"]["env"] if e.startswith("NVIDIA_VISIBLE_DEVICES=")] == [
            "NVIDIA_VISIBLE_DEVICES=void"
        ]
