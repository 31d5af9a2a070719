"""Scenarios 1–5: a pod through containerd's CRI plugin, the way a kubelet runs it, and
what the container sees of the simulated GPUs."""

from __future__ import annotations

import pytest

from gpuctk.discover.nvsmi import parse_nvidia_smi_xml

from .node import CRINode
from .scenarios import Seen, allocate, apply_allocation, pod_request, probe, scenario, target_gpu

pytestmark = pytest.mark.integration


def _run(node: CRINode, sid: str) -> list[Seen]:
    sc = scenario(sid, node.gpu)
    node.set_toolkit_config(sc.toolkit)
    return [probe(node, req) for req in sc.requests]


def test_cri_plugin_serves_runtime_v1_and_sees_local_images(node: CRINode) -> None:
    v = node.client.version()
    assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1")
    assert v.runtime_version.startswith("1.6.")
    tags = {t for img in node.client.list_images() for t in img.repo_tags}
    assert "localhost/pause:latest" in tags


def test_s1_runtimeclass_nvidia_envvar_shape_gets_exactly_that_gpu(node: CRINode) -> None:
    (seen,) = _run(node, "1")
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.gpu_devices == node.gpu.gpu_nodes([target_gpu(node.gpu)]), seen.explain() + node.diagnostics()
    assert "nvidiactl" in seen.devices
    assert seen.has_driver(node.gpu), seen.explain()


def test_s2_volume_mounts_shape_injects_and_image_env_all_gets_nothing(node: CRINode) -> None:
    mounts, image_env = _run(node, "2")
    assert mounts.raw.exit_code == 0, mounts.explain() + node.diagnostics()
    assert mounts.gpu_devices == node.gpu.gpu_nodes([target_gpu(node.gpu)]), (
        mounts.explain() + node.diagnostics()
    )
    assert mounts.has_driver(node.gpu), mounts.explain()
    # The image says NVIDIA_VISIBLE_DEVICES=all, but an unprivileged container's env is not trusted.
    assert image_env.raw.exit_code == 0, image_env.explain() + node.diagnostics()
    assert image_env.devices == set() and image_env.libraries == set() and not image_env.ldcache, (
        image_env.explain()
    )
    # Control: the same pod under the default config (env accepted) gets every GPU, so the
    # empty result above is the accept-* switch at work, not a lost env var.
    node.set_toolkit_config()
    control = probe(node, scenario("2", node.gpu).requests[1])
    assert control.gpu_devices == node.gpu.gpu_nodes(), control.explain() + node.diagnostics()


def test_s3_cdi_mode_nvidia_cdi_annotation_prefix(node: CRINode) -> None:
    (seen,) = _run(node, "3")
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.gpu_devices == node.gpu.gpu_nodes([target_gpu(node.gpu)]), seen.explain() + node.diagnostics()
    assert seen.has_driver(node.gpu), seen.explain()


def test_s4_default_runc_handler_ignores_visible_devices_all(node: CRINode) -> None:
    (seen,) = _run(node, "4")
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.devices == set() and seen.libraries == set() and seen.smi_output is None, seen.explain()


def test_s5_management_path_sees_every_gpu_and_runs_nvidia_smi(node: CRINode) -> None:
    (seen,) = _run(node, "5")
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.gpu_devices == node.gpu.gpu_nodes(), seen.explain() + node.diagnostics()
    assert seen.has_driver(node.gpu), seen.explain()
    # The snapshot agent's check: nvidia-smi -q -x inside the pod lists every GPU.
    assert node.gpu.nvidia_smi is not None
    assert seen.smi_rc == 0, seen.explain()
    report = parse_nvidia_smi_xml(seen.smi_output or "")
    assert [g["uuid"] for g in report["gpus"]] == [g["uuid"] for g in node.gpu.gpus]


def test_native_cdi_shapes_are_ignored_by_containerd_16(node: CRINode) -> None:
    """Why the planner says "no native CDI" here: the GPU Operator >= 25.10 default shape
    (cdi.k8s.io/ annotation + CRI CDIDevices field) reaches containerd 1.6 on the default
    handler, and the pod starts without a GPU and without an error."""
    node.set_toolkit_config()
    req = apply_allocation(
        pod_request("native-cdi", ""),
        allocate(["cdi-annotations", "cdi-cri"], [target_gpu(node.gpu)["uuid"]]),
    )
    assert req.cdi_devices and any(k.startswith("cdi.k8s.io/") for k in req.annotations)
    seen = probe(node, req)
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.devices == set() and seen.libraries == set(), seen.explain()
