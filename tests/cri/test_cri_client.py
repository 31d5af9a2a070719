"""The CRI client's pure parts: the compiled proto keeps the CRI wire numbers, and CRI log
files parse back into the container's output."""

from __future__ import annotations

import pytest

from .client import load_api, parse_cri_log

# (message, field) -> field number in k8s.io/cri-api runtime/v1 api.proto
WIRE_NUMBERS = [
    ("RunPodSandboxRequest", "config", 1),
    ("RunPodSandboxRequest", "runtime_handler", 2),
    ("PodSandboxConfig", "metadata", 1),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "annotations", 7),
    ("PodSandboxConfig", "linux", 8),
    ("LinuxPodSandboxConfig", "security_context", 2),
    ("LinuxSandboxSecurityContext", "namespace_options", 1),
    ("LinuxSandboxSecurityContext", "privileged", 6),
    ("NamespaceOption", "network", 1),
    ("ContainerConfig", "image", 2),
    ("ContainerConfig", "command", 3),
    ("ContainerConfig", "envs", 6),
    ("ContainerConfig", "mounts", 7),
    ("ContainerConfig", "devices", 8),
    ("ContainerConfig", "annotations", 10),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "linux", 15),
    ("ContainerConfig", "CDI_devices", 17),
    ("CreateContainerRequest", "sandbox_config", 3),
    ("Mount", "readonly", 3),
    ("LinuxContainerSecurityContext", "privileged", 2),
    ("ContainerStatus", "state", 3),
    ("ContainerStatus", "exit_code", 7),
    ("ContainerStatus", "reason", 10),
    ("ContainerStatus", "log_path", 15),
    ("VersionResponse", "runtime_api_version", 4),
]


@pytest.mark.parametrize(("message", "field", "number"), WIRE_NUMBERS)
def test_proto_keeps_cri_field_numbers(message: str, field: str, number: int) -> None:
    api = load_api()
    assert getattr(api, message).DESCRIPTOR.fields_by_name[field].number == number


def test_namespace_mode_node_is_two_and_cdi_devices_encode_as_field_17() -> None:
    api = load_api()
    assert api.NODE == 2 and api.CONTAINER_EXITED == 2
    wire = api.ContainerConfig(CDI_devices=[api.CDIDevice(name="a.com/b=c")]).SerializeToString()
    assert wire.startswith(b"\x8a\x01")  # tag (17 << 3 | 2) as a varint


def test_parse_cri_log_joins_partial_lines_per_stream() -> None:
    text = (
        "2026-11-25T03:00:00.000000001Z stdout P dev nvi\n"
        "2026-11-25T03:00:00.000000002Z stderr F warning: x\n"
        "2026-11-25T03:00:00.000000003Z stdout F dia7\n"
        "2026-11-25T03:00:00.000000004Z stdout F \n"
        "2026-11-25T03:00:00.000000005Z stdout F lib /usr/lib/libcuda.so.1 with spaces\n"
        "garbage line\n"
    )
    out, err = parse_cri_log(text)
    assert out.split("\n") == ["dev nvidia7", "", "lib /usr/lib/libcuda.so.1 with spaces"]
    assert err == "warning: x"


def test_parse_probe_separates_devices_libraries_and_nvidia_smi() -> None:
    from .client import PodResult
    from .scenarios import parse_probe

    stdout = "\n".join(
        [
            "dev nvidia7",
            "dev nvidiactl",
            "dev nvidia-uvm",
            "lib /usr/lib/x86_64-linux-gnu/libcuda.so.1",
            "ldcache libcuda.so.1",
            "smi-begin",
            '<?xml version="1.0" ?>',
            "<nvidia_smi_log/>",
            "smi-rc 0",
            "cmd-begin",
            "GPU 7: H100",
            "cmd-rc 0",
        ]
    )
    seen = parse_probe(PodResult("sb", "ctr", 0, stdout, "", "Completed", ""))
    assert seen.gpu_devices == {"nvidia7"} and "nvidia-uvm" in seen.devices
    assert seen.libraries == {"/usr/lib/x86_64-linux-gnu/libcuda.so.1"} and seen.ldcache
    assert seen.smi_output == '<?xml version="1.0" ?>\n<nvidia_smi_log/>' and seen.smi_rc == 0
