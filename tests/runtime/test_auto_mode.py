"""``auto`` mode resolution: upstream's `internal/info/auto_test.go` matrix restated with swappable probes."""

from __future__ import annotations

import pytest

from gpuctk.config.load import default_config_typed
from gpuctk.request import ContainerRequest
from gpuctk.runtime.platform import HostProbes, StaticProbes, platform_of, resolve_mode

ROOT = "/var/run/nvidia-container-devices"


def image(env=(), mounts=(), accept_mounts=False):
    cfg = default_config_typed()
    cfg["accept-nvidia-visible-devices-as-volume-mounts"] = accept_mounts
    return ContainerRequest.from_spec({"process": {"env": list(env)}, "mounts": list(mounts)}, cfg)


CASES = [
    # (description, probes, env, mounts, expected)
    ("no info -> jit-cdi", StaticProbes(), ["NVIDIA_VISIBLE_DEVICES=all"], [], "jit-cdi"),
    ("nvml -> jit-cdi", StaticProbes(nvml=True), ["NVIDIA_VISIBLE_DEVICES=all"], [], "jit-cdi"),
    ("wsl -> jit-cdi", StaticProbes(dxcore=True, nvml=True), ["NVIDIA_VISIBLE_DEVICES=all"], [], "jit-cdi"),
    ("nvgpu -> csv", StaticProbes(igpu=True), ["NVIDIA_VISIBLE_DEVICES=all"], [], "csv"),
    ("nvgpu with nvml -> csv", StaticProbes(nvml=True, igpu=True), ["NVIDIA_VISIBLE_DEVICES=all"], [], "csv"),
    ("tegra without nvml -> csv", StaticProbes(tegra=True), ["NVIDIA_VISIBLE_DEVICES=all"], [], "csv"),
    (
        "tegra with nvml, no nvgpu -> jit-cdi",
        StaticProbes(tegra=True, nvml=True),
        ["NVIDIA_VISIBLE_DEVICES=all"],
        [],
        "jit-cdi",
    ),
    (
        "cdi device name -> cdi",
        StaticProbes(nvml=True),
        ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all"],
        [],
        "cdi",
    ),
    (
        "cdi names on tegra -> cdi",
        StaticProbes(tegra=True),
        ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"],
        [],
        "cdi",
    ),
    (
        "runtime.nvidia.com names -> cdi",
        StaticProbes(),
        ["NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0"],
        [],
        "cdi",
    ),
    (
        "mixed cdi and non-cdi -> jit-cdi",
        StaticProbes(nvml=True),
        ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0,0"],
        [],
        "jit-cdi",
    ),
    (
        "mixed cdi and non-cdi on tegra -> csv",
        StaticProbes(tegra=True),
        ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0,0"],
        [],
        "csv",
    ),
    (
        "cdi mount requests -> cdi",
        StaticProbes(nvml=True),
        [],
        [{"source": "/dev/null", "destination": f"{ROOT}/cdi/nvidia.com/gpu/0"}],
        "cdi",
    ),
    (
        "non-cdi mount requests -> jit-cdi",
        StaticProbes(nvml=True),
        [],
        [{"source": "/dev/null", "destination": f"{ROOT}/GPU0"}],
        "jit-cdi",
    ),
    ("nothing requested -> platform", StaticProbes(tegra=True), [], [], "csv"),
]


@pytest.mark.parametrize(("desc", "probes", "env", "mounts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_auto_resolution(desc, probes, env, mounts, expected):
    assert resolve_mode("auto", image(env, mounts, accept_mounts=True), probes) == expected


@pytest.mark.parametrize("mode", ["legacy", "cdi", "jit-cdi", "csv"])
def test_explicit_modes_are_kept(mode):
    assert (
        resolve_mode(mode, image(["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]), StaticProbes(tegra=True))
        == mode
    )


@pytest.mark.parametrize(
    ("probes", "platform"),
    [
        (StaticProbes(), "unknown"),
        (StaticProbes(nvml=True), "nvml"),
        (StaticProbes(dxcore=True), "wsl"),
        (StaticProbes(tegra=True), "tegra"),
        (StaticProbes(tegra=True, nvml=True), "nvml"),
        (StaticProbes(nvml=True, igpu=True), "tegra"),
        (StaticProbes(dxcore=True, tegra=True), "wsl"),
    ],
)
def test_platform(probes, platform):
    assert platform_of(probes) == platform


def test_host_probe_reads_tegra_markers_under_root(tmp_path):
    probes = HostProbes(str(tmp_path))
    assert not probes.has_tegra_files()
    (tmp_path / "sys/devices/soc0").mkdir(parents=True)
    (tmp_path / "sys/devices/soc0/family").write_text("Tegra\n")
    assert probes.has_tegra_files()
    (tmp_path / "sys/devices/soc0/family").write_text("other\n")
    assert not probes.has_tegra_files()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R35\n")
    assert probes.has_tegra_files()


def test_host_probes_on_this_machine_do_not_crash():
    probes = HostProbes("/")
    assert isinstance(probes.has_nvml(), bool)
    assert isinstance(probes.has_dxcore(), bool)
    assert isinstance(probes.has_integrated_gpu(), bool)


def test_shim_looks_for_tegra_markers_on_the_host_root_not_the_driver_root(tmp_path):
    """As upstream (NVIDIA/nvidia-container-toolkit `internal/info/auto.go`): a driver root that
    holds Tegra markers does not make this host a Tegra host, and the host's / is what counts."""
    from gpuctk.runtime.host import Host

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R35\n")
    cfg = default_config_typed()
    cfg["nvidia-container-cli"]["root"] = str(tmp_path)
    probes = Host(cfg).probes
    assert isinstance(probes, HostProbes) and probes.root == "/"
    assert probes.has_tegra_files() == HostProbes("/").has_tegra_files()
