"""What a container asks for: upstream's `internal/config/image/cuda_image_test.go` cases restated as tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuctk.config import default_config
from gpuctk.request import ContainerRequest, is_qualified_cdi_name, parse_major_minor_version

ROOT = "/var/run/nvidia-container-devices"


def spec(env=(), mounts=(), annotations=None, privileged=False):
    caps = ["CAP_SYS_ADMIN"] if privileged else ["CAP_KILL"]
    s = {"process": {"env": list(env), "capabilities": {"bounding": caps}}, "mounts": list(mounts)}
    if annotations is not None:
        s["annotations"] = annotations
    return s


def devmount(dest, source="/dev/null"):
    return {"source": source, "destination": dest, "type": "bind"}


def cfg(**overrides):
    c = default_config()
    for k, v in overrides.items():
        c[k.replace("_", "-")] = v
    return c


ENV_CASES = [
    # (description, env, privileged, cfg overrides, expected)
    ("no env, not legacy -> nothing", [], False, {}, []),
    ("legacy CUDA image defaults to all", ["CUDA_VERSION=11.0"], False, {}, ["all"]),
    (
        "legacy image with NVIDIA_REQUIRE_CUDA is not legacy",
        ["CUDA_VERSION=11.0", "NVIDIA_REQUIRE_CUDA=cuda>=11"],
        False,
        {},
        [],
    ),
    (
        "legacy image, empty NVIDIA_VISIBLE_DEVICES -> void",
        ["CUDA_VERSION=11.0", "NVIDIA_VISIBLE_DEVICES="],
        False,
        {},
        [],
    ),
    ("legacy image, void", ["CUDA_VERSION=11.0", "NVIDIA_VISIBLE_DEVICES=void"], False, {}, []),
    ("legacy image, none", ["CUDA_VERSION=11.0", "NVIDIA_VISIBLE_DEVICES=none"], False, {}, ["none"]),
    (
        "legacy image, explicit list",
        ["CUDA_VERSION=11.0", "NVIDIA_VISIBLE_DEVICES=gpu0,gpu1"],
        False,
        {},
        ["gpu0", "gpu1"],
    ),
    ("all", ["NVIDIA_VISIBLE_DEVICES=all"], False, {}, ["all"]),
    ("none", ["NVIDIA_VISIBLE_DEVICES=none"], False, {}, ["none"]),
    ("void", ["NVIDIA_VISIBLE_DEVICES=void"], False, {}, []),
    ("empty", ["NVIDIA_VISIBLE_DEVICES="], False, {}, []),
    ("indices", ["NVIDIA_VISIBLE_DEVICES=0,1"], False, {}, ["0", "1"]),
    ("whitespace and empty tokens dropped", ["NVIDIA_VISIBLE_DEVICES= 0 , ,1 "], False, {}, ["0", "1"]),
    ("mig indices", ["NVIDIA_VISIBLE_DEVICES=0:0,1:2"], False, {}, ["0:0", "1:2"]),
    ("uuids", ["NVIDIA_VISIBLE_DEVICES=GPU-1d3b,MIG-8a7c"], False, {}, ["GPU-1d3b", "MIG-8a7c"]),
    (
        "qualified cdi names",
        ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0,nvidia.com/gpu=all"],
        False,
        {},
        ["nvidia.com/gpu=0", "nvidia.com/gpu=all"],
    ),
    ("void anywhere wins", ["NVIDIA_VISIBLE_DEVICES=0,void,all"], False, {}, []),
    ("first special token decides: all", ["NVIDIA_VISIBLE_DEVICES=0,all,none"], False, {}, ["all"]),
    ("first special token decides: none", ["NVIDIA_VISIBLE_DEVICES=none,all"], False, {}, ["none"]),
    (
        "unprivileged env rejected when not accepted",
        ["NVIDIA_VISIBLE_DEVICES=all"],
        False,
        {"accept-nvidia-visible-devices-envvar-when-unprivileged": False},
        [],
    ),
    (
        "privileged env accepted anyway",
        ["NVIDIA_VISIBLE_DEVICES=all"],
        True,
        {"accept-nvidia-visible-devices-envvar-when-unprivileged": False},
        ["all"],
    ),
    (
        "legacy image unprivileged not accepted",
        ["CUDA_VERSION=11.0"],
        False,
        {"accept-nvidia-visible-devices-envvar-when-unprivileged": False},
        [],
    ),
    (
        "swarm var overrides NVIDIA_VISIBLE_DEVICES",
        ["NVIDIA_VISIBLE_DEVICES=all", "DOCKER_RESOURCE_GPUS=GPU1,GPU2"],
        False,
        {"swarm-resource": "DOCKER_RESOURCE_GPUS"},
        ["GPU1", "GPU2"],
    ),
    (
        "all present swarm vars are merged",
        [
            "NVIDIA_VISIBLE_DEVICES=all",
            "DOCKER_RESOURCE_GPUS=GPU1,GPU2",
            "DOCKER_RESOURCE_GPUS_ADDITIONAL=GPU3",
        ],
        False,
        {"swarm-resource": "DOCKER_RESOURCE_GPUS, DOCKER_RESOURCE_GPUS_ADDITIONAL"},
        ["GPU1", "GPU2", "GPU3"],
    ),
    (
        "absent swarm var falls back to NVIDIA_VISIBLE_DEVICES",
        ["NVIDIA_VISIBLE_DEVICES=GPU0"],
        False,
        {"swarm-resource": "DOCKER_RESOURCE_GPUS"},
        ["GPU0"],
    ),
    ("swarm var not configured is ignored", ["DOCKER_RESOURCE_GPUS=GPU1"], False, {}, []),
]


@pytest.mark.parametrize(
    ("desc", "env", "privileged", "overrides", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES]
)
def test_visible_devices_from_env(desc, env, privileged, overrides, expected):
    image = ContainerRequest.from_spec(
        spec(env, privileged=privileged), cfg(**{k.replace("-", "_"): v for k, v in overrides.items()})
    )
    assert image.visible_devices() == expected


def test_rejected_env_is_warned():
    image = ContainerRequest.from_spec(
        spec(["NVIDIA_VISIBLE_DEVICES=all"]),
        cfg(accept_nvidia_visible_devices_envvar_when_unprivileged=False),
    )
    assert image.visible_devices() == []
    assert any("unprivileged" in w for w in image.warnings)


MOUNT_CASES = [
    (
        "mount requests ignored unless accepted",
        [devmount(f"{ROOT}/GPU0")],
        False,
        ["NVIDIA_VISIBLE_DEVICES=all"],
        ["all"],
    ),
    (
        "mount requests used when accepted",
        [devmount(f"{ROOT}/GPU0"), devmount(f"{ROOT}/GPU1")],
        True,
        ["NVIDIA_VISIBLE_DEVICES=all"],
        ["GPU0", "GPU1"],
    ),
    (
        "source must be /dev/null (cleaned)",
        [devmount(f"{ROOT}/GPU0", "/dev//null"), devmount(f"{ROOT}/GPU1", "/tmp/x")],
        True,
        [],
        ["GPU0"],
    ),
    ("destination must be under the root", [devmount("/var/run/other/GPU0"), devmount(ROOT)], True, [], []),
    ("duplicate destinations once", [devmount(f"{ROOT}/GPU0"), devmount(f"{ROOT}/GPU0")], True, [], ["GPU0"]),
    ("nested names keep their slashes", [devmount(f"{ROOT}/0:1")], True, [], ["0:1"]),
    (
        "imex entries are not devices",
        [devmount(f"{ROOT}/imex/3"), devmount(f"{ROOT}/GPU0")],
        True,
        [],
        ["GPU0"],
    ),
    ("cdi/vendor/class/dev form", [devmount(f"{ROOT}/cdi/nvidia.com/gpu/0")], True, [], ["nvidia.com/gpu=0"]),
    (
        "cdi/vendor/class=dev form",
        [devmount(f"{ROOT}/cdi/nvidia.com/gpu=all")],
        True,
        [],
        ["nvidia.com/gpu=all"],
    ),
    (
        "invalid cdi forms skipped",
        [devmount(f"{ROOT}/cdi/nvidia.com"), devmount(f"{ROOT}/cdi/nvidia.com/gpu=0")],
        True,
        [],
        ["nvidia.com/gpu=0"],
    ),
    ("no mounts fall back to env", [], True, ["NVIDIA_VISIBLE_DEVICES=0"], ["0"]),
    # the destination is cleaned first, like upstream's filepath.Clean
    ("dot component cleaned", [devmount(f"{ROOT}/./5")], True, [], ["5"]),
    ("double slashes cleaned", [devmount(f"/{ROOT}//6/")], True, [], ["6"]),
    ("cleaned duplicates once", [devmount(f"{ROOT}/5"), devmount(f"{ROOT}/./5")], True, [], ["5"]),
    ("dot-dot leaving the root ignored", [devmount(f"{ROOT}/../etc")], True, [], []),
    # gpuctk on purpose: upstream's bare prefix match reads this as GPU 6
    ("prefix without a slash is not a request", [devmount(f"{ROOT}6")], True, [], []),
]


@pytest.mark.parametrize(
    ("desc", "mounts", "accept", "env", "expected"), MOUNT_CASES, ids=[c[0] for c in MOUNT_CASES]
)
def test_visible_devices_from_mounts(desc, mounts, accept, env, expected):
    image = ContainerRequest.from_spec(
        spec(env, mounts), cfg(accept_nvidia_visible_devices_as_volume_mounts=accept)
    )
    assert image.visible_devices() == expected


def test_mount_requests_ignore_privilege_rule():
    c = cfg(
        accept_nvidia_visible_devices_as_volume_mounts=True,
        accept_nvidia_visible_devices_envvar_when_unprivileged=False,
    )
    image = ContainerRequest.from_spec(spec(["NVIDIA_VISIBLE_DEVICES=all"], [devmount(f"{ROOT}/GPU0")]), c)
    assert image.visible_devices() == ["GPU0"]


ANNOTATION_CASES = [
    (
        "annotations win over env",
        {"cdi.k8s.io/a": "nvidia.com/gpu=0"},
        ["NVIDIA_VISIBLE_DEVICES=all"],
        None,
        ["nvidia.com/gpu=0"],
    ),
    (
        "keys sorted, values split, no dedup",
        {"cdi.k8s.io/b": "v/c=2", "cdi.k8s.io/a": "v/c=0,v/c=1,v/c=0"},
        [],
        None,
        ["v/c=0", "v/c=1", "v/c=0", "v/c=2"],
    ),
    ("other prefixes ignored", {"example.com/x": "v/c=0"}, ["NVIDIA_VISIBLE_DEVICES=1"], None, ["1"]),
    (
        "custom prefixes",
        {"example.com/x": "v/c=0", "cdi.k8s.io/a": "v/c=1"},
        [],
        ("example.com/",),
        ["v/c=0"],
    ),
    (
        "no prefixes (non-cdi modes) ignores annotations",
        {"cdi.k8s.io/a": "v/c=0"},
        ["NVIDIA_VISIBLE_DEVICES=1"],
        (),
        ["1"],
    ),
]


@pytest.mark.parametrize(
    ("desc", "annotations", "env", "prefixes", "expected"),
    ANNOTATION_CASES,
    ids=[c[0] for c in ANNOTATION_CASES],
)
def test_visible_devices_from_annotations(desc, annotations, env, prefixes, expected):
    image = ContainerRequest.from_spec(spec(env, annotations=annotations), cfg(), prefixes)
    assert image.visible_devices() == expected


def test_annotations_ignore_privilege_rule_and_without_annotations():
    c = cfg(accept_nvidia_visible_devices_envvar_when_unprivileged=False)
    image = ContainerRequest.from_spec(
        spec(["NVIDIA_VISIBLE_DEVICES=all"], annotations={"cdi.k8s.io/x": "v/c=0"}), c
    )
    assert image.visible_devices() == ["v/c=0"]
    assert image.without_annotations().visible_devices() == []


def test_config_annotation_prefixes_are_used():
    c = cfg()
    c["nvidia-container-runtime"]["modes"]["cdi"]["annotation-prefixes"] = ["gpu.example/"]
    image = ContainerRequest.from_spec(
        spec(annotations={"gpu.example/a": "v/c=9", "cdi.k8s.io/b": "v/c=1"}), c
    )
    assert image.visible_devices() == ["v/c=9"]


@pytest.mark.parametrize(
    ("caps", "privileged"),
    [
        ({"bounding": ["CAP_SYS_ADMIN"]}, True),
        ({"bounding": ["CAP_KILL"], "effective": ["CAP_SYS_ADMIN"]}, False),
        (["CAP_SYS_ADMIN"], True),
        (None, False),
    ],
)
def test_privilege_is_cap_sys_admin_in_bounding_set(caps, privileged):
    s = {"process": {"env": [], "capabilities": caps}}
    assert ContainerRequest.from_spec(s, cfg()).is_privileged() is privileged


IMEX_CASES = [
    ("env channels", ["NVIDIA_IMEX_CHANNELS=0,1"], [], False, {}, ["0", "1"]),
    ("all is ignored", ["NVIDIA_IMEX_CHANNELS=all"], [], False, {}, []),
    ("none and void", ["NVIDIA_IMEX_CHANNELS=none"], [], False, {}, []),
    ("unset", [], [], False, {}, []),
    ("mounts when accepted", ["NVIDIA_IMEX_CHANNELS=5"], [devmount(f"{ROOT}/imex/3")], True, {}, ["3"]),
    (
        "mounts ignored when not accepted",
        ["NVIDIA_IMEX_CHANNELS=5"],
        [devmount(f"{ROOT}/imex/3")],
        False,
        {},
        ["5"],
    ),
    (
        "unprivileged env rejected",
        ["NVIDIA_IMEX_CHANNELS=1"],
        [],
        False,
        {"accept-nvidia-visible-devices-envvar-when-unprivileged": False},
        [],
    ),
    ("feature ignores requests", ["NVIDIA_IMEX_CHANNELS=1"], [], False, {"ignore": True}, []),
]


@pytest.mark.parametrize(
    ("desc", "env", "mounts", "accept", "overrides", "expected"), IMEX_CASES, ids=[c[0] for c in IMEX_CASES]
)
def test_imex_channels(desc, env, mounts, accept, overrides, expected):
    c = cfg(accept_nvidia_visible_devices_as_volume_mounts=accept)
    if overrides.get("ignore"):
        c["features"]["ignore-imex-channel-requests"] = True
    for k, v in overrides.items():
        if k != "ignore":
            c[k] = v
    assert ContainerRequest.from_spec(spec(env, mounts), c).imex_channels() == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["utility", "compute"]),
        ("", ["utility", "compute"]),
        ("all", ["compute", "compat32", "graphics", "utility", "video", "display", "ngx"]),
        ("compute,video", ["compute", "video"]),
        ("graphics, display,graphics", ["graphics", "display"]),
    ],
)
def test_driver_capabilities(value, expected):
    env = [] if value is None else [f"NVIDIA_DRIVER_CAPABILITIES={value}"]
    assert ContainerRequest.from_spec(spec(env), cfg()).driver_capabilities() == expected


def test_driver_capabilities_restricted_to_supported():
    image = ContainerRequest.from_spec(spec(["NVIDIA_DRIVER_CAPABILITIES=all"]), cfg())
    assert image.driver_capabilities("compute,utility") == ["compute", "utility"]


REQUIREMENT_CASES = [
    ("NVIDIA_REQUIRE_JETPACK is ignored", ["NVIDIA_REQUIRE_JETPACK=csv-mounts=all"], []),
    ("NVIDIA_REQUIRE_JETPACK_HOST_MOUNTS is ignored", ["NVIDIA_REQUIRE_JETPACK_HOST_MOUNTS=base-only"], []),
    ("single requirement", ["NVIDIA_REQUIRE_CUDA=cuda>=11.6"], ["cuda>=11.6"]),
    (
        "requirements are concatenated",
        ["NVIDIA_REQUIRE_CUDA=cuda>=11.6", "NVIDIA_REQUIRE_BRAND=brand=tesla"],
        ["cuda>=11.6", "brand=tesla"],
    ),
    ("legacy image", ["CUDA_VERSION=11.6"], ["cuda>=11.6"]),
    (
        "legacy image with additional requirement",
        ["CUDA_VERSION=11.6.2", "NVIDIA_REQUIRE_BRAND=brand=tesla"],
        ["cuda>=11.6", "brand=tesla"],
    ),
    (
        "NVIDIA_DISABLE_REQUIRE ignores requirements",
        ["NVIDIA_REQUIRE_CUDA=cuda>=11.6", "NVIDIA_REQUIRE_BRAND=brand=tesla", "NVIDIA_DISABLE_REQUIRE=true"],
        [],
    ),
    (
        "NVIDIA_DISABLE_REQUIRE ignores legacy requirements",
        ["CUDA_VERSION=11.6", "NVIDIA_DISABLE_REQUIRE=1"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("desc", "env", "expected"), REQUIREMENT_CASES, ids=[c[0] for c in REQUIREMENT_CASES]
)
def test_requirements(desc, env, expected):
    assert sorted(ContainerRequest.from_spec(spec(env), cfg()).requirements()) == sorted(expected)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0", "0.0"),
        ("8", "8.0"),
        ("7.5", "7.5"),
        ("9.0.116", "9.0"),
        ("4294967295.4294967295.4294967295", "4294967295.4294967295"),
        ("v11.6", "11.6"),
    ],
)
def test_parse_major_minor_valid(version, expected):
    assert parse_major_minor_version(version) == expected


@pytest.mark.parametrize(
    "version",
    [
        "foo",
        "foo.5.10",
        "9.0.116.50",
        "9.0.116foo",
        "7.foo",
        "9.0.bar",
        "9.4294967296",
        "9.0.116.",
        "9..0",
        "9.",
        ".5.10",
        "-9",
        "+9",
        "-9.1.116",
        "-9.-1.-116",
    ],
)
def test_parse_major_minor_invalid(version):
    with pytest.raises(ValueError):
        parse_major_minor_version(version)


def test_other_requests():
    image = ContainerRequest.from_spec(
        spec(
            [
                "NVIDIA_MIG_CONFIG_DEVICES=0,1",
                "NVIDIA_MIG_MONITOR_DEVICES=all",
                "NVIDIA_GDS=enabled",
                "NVIDIA_MOFED=yes",
                "NVIDIA_REQUIRE_JETPACK=csv-mounts=all",
            ]
        ),
        cfg(),
    )
    assert image.mig_config_devices() == ["0", "1"]
    assert image.mig_monitor_devices() == ["all"]
    assert image.feature_enabled("NVIDIA_GDS") and not image.feature_enabled("NVIDIA_MOFED")
    assert image.csv_mounts_all()


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("nvidia.com/gpu=0", True),
        ("nvidia.com/gpu=all", True),
        ("runtime.nvidia.com/gpu=GPU-1234", True),
        ("vendor.com/class=0:1", True),
        ("nvidia.com/gpu", False),
        ("gpu=0", False),
        ("0", False),
        ("nvidia.com/gpu=", False),
        ("/gpu=0", False),
    ],
)
def test_qualified_names(name, ok):
    assert is_qualified_cdi_name(name) is ok


@given(st.lists(st.text(alphabet="abc01,:= -/", max_size=8), max_size=4))
def test_env_parsing_never_crashes_and_never_yields_empty_tokens(values):
    env = [f"NVIDIA_VISIBLE_DEVICES={','.join(values)}"]
    devices = ContainerRequest.from_spec(spec(env), cfg()).visible_devices()
    assert all(d and d == d.strip() for d in devices)
    assert "void" not in devices
