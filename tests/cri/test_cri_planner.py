"""Scenario 6: gpuctk's Kubernetes recipe for this node, applied literally through CRI.

The node is the containerd 1.6 that ``gpuctk install --cdi auto`` configured (the node
half of the same decision the plan makes: nvidia the default runtime, in cdi mode). It is described to ``gpuctk k8s`` the way a kubelet publishes it (its
``containerRuntimeVersion`` comes from CRI ``Version``: ``containerd://1.6.20…``).
``gpuctk k8s manifests`` gives the RuntimeClass, the device-plugin values and the toolkit
env; ``gpuctk k8s pod-spec`` gives the pod. The test then plays kubelet + device plugin:
the pod's ``runtimeClassName`` becomes the CRI handler through the RuntimeClass, its
``nvidia.com/gpu`` limit becomes an ``Allocate`` with the plugin values' strategy, its env
and command go into the container. Only the image is swapped for the local busybox.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from support.tools import venv_script

from .client import PodRequest
from .images import WORKLOAD_IMAGE
from .node import HANDLER, CRINode, effective_cri_config, merge
from .scenarios import PROBE, Seen, apply_allocation, cri_version, probe, target_gpu

pytestmark = pytest.mark.integration

# GPU Operator toolkit-container env -> the shim's config.toml keys it sets.
_TOOLKIT_ENV_KEYS = {
    "NVIDIA_CONTAINER_RUNTIME_MODE": ("nvidia-container-runtime", "mode"),
    "NVIDIA_CONTAINER_RUNTIME_MODES_CDI_ANNOTATION_PREFIXES": (
        "nvidia-container-runtime",
        "modes",
        "cdi",
        "annotation-prefixes",
    ),
    "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED": (
        "accept-nvidia-visible-devices-envvar-when-unprivileged",
    ),
    "ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS": ("accept-nvidia-visible-devices-as-volume-mounts",),
}


def _gpuctk_json(*args: str) -> Any:
    cmd = [venv_script("gpuctk"), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr}"
    return json.loads(p.stdout)


@dataclass
class Cluster:
    """What the API server would hold after applying gpuctk's manifests for this node."""

    facts_file: str
    runtime_classes: dict[str, str]  # name -> handler
    device_plugin_values: dict[str, Any]
    toolkit_env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(auto_node: CRINode, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    node = auto_node
    n = str(len(node.gpu.gpus))
    node_obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "cri-node", "labels": {"nvidia.com/gpu.present": "true"}},
        "status": {
            "nodeInfo": {"containerRuntimeVersion": cri_version(node.client)},
            "capacity": {"nvidia.com/gpu": n},
            "allocatable": {"nvidia.com/gpu": n},
        },
    }
    d = tmp_path_factory.mktemp("cluster")
    before = os.path.join(d, "before.json")
    with open(before, "w") as f:
        json.dump({"nodes": [node_obj]}, f)
    manifests = _gpuctk_json("k8s", "manifests", "--from", before, "-o", "json")
    rcs = [m for m in manifests.values() if isinstance(m, dict) and m.get("kind") == "RuntimeClass"]
    after = os.path.join(d, "after.json")
    with open(after, "w") as f:
        json.dump({"nodes": [node_obj], "runtimeClasses": rcs}, f)
    toolkit = (manifests.get("toolkit-env") or {}).get("toolkit") or {}
    return Cluster(
        facts_file=after,
        runtime_classes={rc["metadata"]["name"]: rc["handler"] for rc in rcs},
        device_plugin_values=dict(manifests.get("device-plugin-values") or {}),
        toolkit_env={e["name"]: str(e["value"]) for e in toolkit.get("env") or []},
    )


def _toolkit_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        path = _TOOLKIT_ENV_KEYS.get(name)
        if path is None:
            continue
        parsed: Any = value.lower() == "true" if value.lower() in ("true", "false") else value
        if path[-1] == "annotation-prefixes":
            parsed = [v for v in value.split(",") if v]
        leaf: dict[str, Any] = {path[-1]: parsed}
        for key in reversed(path[:-1]):
            leaf = {key: leaf}
        out = merge(out, leaf)
    return out


def _kubelet(node: CRINode, cluster: Cluster, pod: dict[str, Any], name: str) -> PodRequest:
    """The CRI request a kubelet + NVIDIA device plugin (configured with the plan's values)
    would make for ``pod``'s first container on this node."""
    from gpuctk.k8s.deviceplugin import PluginConfig, allocate_response, parse_strategies

    spec = pod["spec"]
    (ctr,) = spec["containers"]
    rc_name = spec.get("runtimeClassName")
    handler = cluster.runtime_classes[rc_name] if rc_name else ""  # unknown class: KeyError, like admission
    then = shlex.join(ctr.get("command", []) + ctr.get("args", []))
    req = PodRequest(
        name=name,
        image=WORKLOAD_IMAGE,
        command=["sh", "-c", PROBE.replace("exit 0\n", "") + f'echo "cmd-begin"; {then}; echo "cmd-rc $?"'],
        runtime_handler=handler,
        envs={e["name"]: str(e["value"]) for e in ctr.get("env") or [] if "value" in e},
    )
    wanted = int(str(((ctr.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", "0")))
    if wanted:
        assert wanted == 1
        values = cluster.device_plugin_values
        env = {e["name"]: e["value"] for e in values.get("env") or []}
        cfg = PluginConfig(
            device_list_strategy=parse_strategies(values.get("deviceListStrategy")),
            device_id_strategy=values.get("deviceIDStrategy") or "uuid",
            cdi_annotation_prefix=env.get("CDI_ANNOTATION_PREFIX", "cdi.k8s.io/"),
        )
        gpu = target_gpu(node.gpu)
        apply_allocation(
            req,
            allocate_response(
                cfg, [gpu["uuid"]], index_of={gpu["uuid"]: str(gpu["index"])}, response_id="cri-planner"
            ),
        )
    return req


def _command_output(seen: Seen) -> tuple[str, int | None]:
    lines = seen.raw.stdout.splitlines()
    if "cmd-begin" not in lines:
        return "", None
    rest = lines[lines.index("cmd-begin") + 1 :]
    rc = next((int(x.split()[1]) for x in rest if x.startswith("cmd-rc ")), None)
    return "\n".join(x for x in rest if not x.startswith("cmd-rc ")), rc


def _apply_toolkit(node: CRINode, cluster: Cluster) -> None:
    """The toolkit env the manifests give, checked against / applied to this node."""
    env = cluster.toolkit_env
    cri = effective_cri_config(node.containerd.config_path)
    assert env.get("CONTAINERD_RUNTIME_CLASS", "nvidia") in cri["containerd"]["runtimes"]
    default = cri["containerd"]["default_runtime_name"]
    if env.get("NVIDIA_RUNTIME_SET_AS_DEFAULT") == "false":
        assert default != env.get("CONTAINERD_RUNTIME_CLASS", "nvidia")
    if env.get("NVIDIA_RUNTIME_SET_AS_DEFAULT") == "true":
        assert default == env.get("CONTAINERD_RUNTIME_CLASS", "nvidia")
    node.set_toolkit_config(_toolkit_overrides(env))


def test_plan_reads_this_node_as_containerd_16_without_native_cdi(
    auto_node: CRINode, cluster: Cluster
) -> None:
    p = _gpuctk_json("k8s", "plan", "--from", cluster.facts_file, "-o", "json")
    (group,) = p["groups"]
    assert (group["runtime"], group["native_cdi"]) == ("containerd", False)
    assert group["version"].startswith("1.6.")
    # the same decision install --cdi auto recorded on the node
    with open(auto_node.status_file) as f:
        assert group["decision"] == json.load(f)["decision"]
    assert group["decision"]["path"] == "nvidia-runtime-cdi"
    assert group["gpu_workload"]["runtimeClassName"] is None
    assert cluster.runtime_classes == {"nvidia": HANDLER}
    assert cluster.toolkit_env.get("NVIDIA_RUNTIME_SET_AS_DEFAULT") == "true"


def test_s6_planned_gpu_pod_gets_its_gpu(auto_node: CRINode, cluster: Cluster) -> None:
    node = auto_node
    _apply_toolkit(node, cluster)
    pod = _gpuctk_json("k8s", "pod-spec", "--from", cluster.facts_file, "--gpus", "1", "-o", "json")
    seen = probe(node, _kubelet(node, cluster, pod, "s6-planned-gpu"))
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.gpu_devices == node.gpu.gpu_nodes([target_gpu(node.gpu)]), seen.explain() + node.diagnostics()
    assert seen.has_driver(node.gpu), seen.explain()
    out, rc = _command_output(seen)
    assert rc == 0 and "GPU " in out, seen.explain()  # the pod's own command (nvidia-smi -L) ran


def test_s6_planned_management_pod_sees_every_gpu(auto_node: CRINode, cluster: Cluster) -> None:
    node = auto_node
    _apply_toolkit(node, cluster)
    pod = _gpuctk_json("k8s", "pod-spec", "--from", cluster.facts_file, "--management", "-o", "json")
    assert pod["spec"].get("runtimeClassName") == "nvidia"
    assert "nvidia.com/gpu" not in str(pod["spec"]["containers"][0].get("resources"))  # consumes no GPU
    seen = probe(node, _kubelet(node, cluster, pod, "s6-planned-mgmt"))
    assert seen.raw.exit_code == 0, seen.explain() + node.diagnostics()
    assert seen.gpu_devices == node.gpu.gpu_nodes(), seen.explain() + node.diagnostics()
    assert seen.has_driver(node.gpu), seen.explain()
    out, rc = _command_output(seen)
    assert rc == 0, seen.explain()
    assert all(g["uuid"] in out for g in node.gpu.gpus), seen.explain()
