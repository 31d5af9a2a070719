"""The CRI scenarios as data: for each, the shim's config and the pod a kubelet would send
(RuntimeClass handler + what the NVIDIA device plugin's Allocate returned), plus a probe
that reports, from inside the container, which /dev/nvidia* nodes and driver files it sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .client import CRIClient, PodRequest, PodResult, run_pod
from .images import ENV_ALL_IMAGE, WORKLOAD_IMAGE
from .node import HANDLER, CRINode, GpuNode

# Runs in busybox: lists nvidia device nodes and driver libraries, checks the linker cache,
# and runs nvidia-smi when one was injected.
PROBE = r"""
cd /dev && for d in nvidia*; do [ -e "$d" ] && echo "dev $d"; done
for f in $(find /usr /lib /lib64 \( -name 'libcuda.so*' -o -name 'libnvidia-ml.so*' \) 2>/dev/null); do echo "lib $f"; done
if [ -f /etc/ld.so.cache ] && grep -q libcuda.so.1 /etc/ld.so.cache; then echo "ldcache libcuda.so.1"; fi
if [ -e /usr/bin/nvidia-smi ]; then echo "smi-begin"; /usr/bin/nvidia-smi -q -x; echo "smi-rc $?"; fi
exit 0
"""

_GPU_NODE = re.compile(r"^nvidia\d+$")


@dataclass
class Seen:
    """What the container saw."""

    devices: set[str]
    libraries: set[str]
    ldcache: bool  # the container's /etc/ld.so.cache knows libcuda.so.1 (update-ldcache hook)
    smi_output: str | None
    smi_rc: int | None
    raw: PodResult

    @property
    def gpu_devices(self) -> set[str]:
        return {d for d in self.devices if _GPU_NODE.match(d)}

    def has_driver(self, node: GpuNode) -> bool:
        """Libraries mounted, SONAME links made and the linker cache updated."""
        return set(node.libraries) <= self.libraries and self.ldcache

    def explain(self) -> str:
        r = self.raw
        return f"exit={r.exit_code} reason={r.reason} stdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def parse_probe(result: PodResult) -> Seen:
    devices: set[str] = set()
    libs: set[str] = set()
    smi_lines: list[str] | None = None
    smi_rc: int | None = None
    lines = result.stdout.splitlines()
    for line in lines:
        if smi_lines is not None and smi_rc is None and not line.startswith("smi-rc "):
            smi_lines.append(line)
        elif line.startswith("dev "):
            devices.add(line[4:])
        elif line.startswith("lib "):
            libs.add(line[4:])
        elif line == "smi-begin":
            smi_lines = []
        elif line.startswith("smi-rc "):
            smi_rc = int(line.split()[1])
    smi = "\n".join(smi_lines) if smi_lines is not None else None
    return Seen(devices, libs, "ldcache libcuda.so.1" in lines, smi, smi_rc, result)


def probe(node: CRINode, req: PodRequest) -> Seen:
    return parse_probe(run_pod(node.client, req, node.log_root))


# ---------------------------------------------------------------- device-plugin shapes
def allocate(strategies: list[str], device_ids: list[str], prefix: str = "cdi.k8s.io/") -> dict[str, Any]:
    """The NVIDIA device plugin's ContainerAllocateResponse for these devices."""
    from gpuctk.k8s.deviceplugin import PluginConfig, allocate_response

    cfg = PluginConfig(device_list_strategy=strategies, cdi_annotation_prefix=prefix)
    return allocate_response(cfg, device_ids, response_id="cri-test")


def apply_allocation(req: PodRequest, resp: dict[str, Any]) -> PodRequest:
    """What the kubelet does with an Allocate response: envs, mounts, devices, annotations
    and CDI devices go into the CRI ContainerConfig."""
    req.envs.update(resp.get("envs") or {})
    req.mounts += [
        {
            "container_path": m["containerPath"],
            "host_path": m["hostPath"],
            "readonly": bool(m.get("readOnly", False)),
        }
        for m in resp.get("mounts") or []
    ]
    req.devices += [
        {
            "container_path": d["containerPath"],
            "host_path": d["hostPath"],
            "permissions": d.get("permissions", "rw"),
        }
        for d in resp.get("devices") or []
    ]
    req.annotations.update(resp.get("annotations") or {})
    req.cdi_devices += [d["name"] for d in resp.get("cdiDevices") or []]
    return req


# ---------------------------------------------------------------- the scenarios
@dataclass
class Scenario:
    id: str
    title: str
    toolkit: dict[str, Any]  # overrides for the shim's config.toml
    requests: list[PodRequest] = field(default_factory=list)


# RuntimeClass name -> CRI handler (what `gpuctk k8s manifests` creates: nvidia -> nvidia)
RUNTIME_CLASSES = {"nvidia": HANDLER}


def pod_request(name: str, handler: str, image: str = WORKLOAD_IMAGE) -> PodRequest:
    return PodRequest(name=name, image=image, command=["sh", "-c", PROBE], runtime_handler=handler)


def target_gpu(gpu: GpuNode) -> dict[str, Any]:
    """The GPU the device plugin hands out: the last one, so "exactly that GPU" is not just GPU 0."""
    return gpu.gpus[-1]


def scenario(sid: str, gpu: GpuNode) -> Scenario:
    """Scenarios 1–5 of the CRI issue (6 comes from the planner, see test_cri_planner)."""
    target = target_gpu(gpu)
    if sid == "1":
        return Scenario(
            sid,
            "RuntimeClass nvidia + envvar shape",
            {},
            [apply_allocation(pod_request("s1-envvar", HANDLER), allocate(["envvar"], [target["uuid"]]))],
        )
    if sid == "2":
        tk: dict[str, Any] = {
            "accept-nvidia-visible-devices-as-volume-mounts": True,
            "accept-nvidia-visible-devices-envvar-when-unprivileged": False,
        }
        return Scenario(
            sid,
            "RuntimeClass nvidia + volume-mounts shape",
            tk,
            [
                apply_allocation(
                    pod_request("s2-mounts", HANDLER), allocate(["volume-mounts"], [target["uuid"]])
                ),
                pod_request("s2-image-env-all", HANDLER, ENV_ALL_IMAGE),
            ],
        )
    if sid == "3":
        prefix = "nvidia.cdi.k8s.io/"
        cdi_mode: dict[str, Any] = {
            "nvidia-container-runtime": {"mode": "cdi", "modes": {"cdi": {"annotation-prefixes": [prefix]}}}
        }
        return Scenario(
            sid,
            "RuntimeClass nvidia in cdi mode + cdi-annotations shape (nvidia.cdi.k8s.io/)",
            cdi_mode,
            [
                apply_allocation(
                    pod_request("s3-cdi-annotations", HANDLER),
                    allocate(["cdi-annotations"], [target["uuid"]], prefix=prefix),
                )
            ],
        )
    if sid == "4":
        req = pod_request("s4-default-runc", "")
        req.envs["NVIDIA_VISIBLE_DEVICES"] = "all"
        return Scenario(sid, "default handler (runc) + NVIDIA_VISIBLE_DEVICES=all", {}, [req])
    if sid == "5":
        # The snapshot agent's --runtime-class recipe, from its own pod builder (unprivileged
        # variant: only the RuntimeClass and the env give it the driver).
        from gpuctk.k8s.agent import AgentOptions, build_pod_spec

        spec = build_pod_spec(AgentOptions(runtime_class="nvidia", privileged=False))
        req = pod_request("s5-management", RUNTIME_CLASSES[spec["runtimeClassName"]])
        req.envs.update({e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e})
        assert req.envs.get("NVIDIA_VISIBLE_DEVICES") == "all"
        return Scenario(
            sid, "management path: RuntimeClass nvidia + NVIDIA_VISIBLE_DEVICES=all, no GPU", {}, [req]
        )
    raise KeyError(sid)


def cri_version(client: CRIClient) -> str:
    """``containerRuntimeVersion`` as the kubelet reports it: ``<runtime_name>://<runtime_version>``."""
    v = client.version()
    return f"{v.runtime_name}://{v.runtime_version}"
