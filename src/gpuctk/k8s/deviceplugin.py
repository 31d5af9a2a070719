"""The NVIDIA device plugin's ``Allocate`` response, per strategy (NVIDIA/k8s-device-plugin
``internal/plugin/server.go`` ``getAllocateResponse``).

A pure model of what the plugin hands the kubelet for one container request, so the
planner, the docs and the tests can show exactly which env vars, mounts, annotations and
CRI ``CDIDevices`` a workload receives under each ``deviceListStrategy`` set.
"""

from __future__ import annotations

import uuid as _uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpuctk.errors import GpuctkError

STRATEGIES = ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri")
DEVICE_ID_STRATEGIES = ("uuid", "index")
MIG_STRATEGIES = ("none", "single", "mixed")
DEFAULT_ANNOTATION_PREFIX = "cdi.k8s.io/"
CDI_VENDOR = "k8s.device-plugin.nvidia.com"
VOLUME_MOUNT_DIR = "/var/run/nvidia-container-devices"
PLUGIN_NAME = "nvidia-device-plugin"


def parse_strategies(value: str | Iterable[str] | None) -> list[str]:
    """``"cdi-annotations,cdi-cri"`` or a list -> the validated set, in canonical order."""
    if value is None or value == "":
        return ["envvar"]
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [s.strip() for s in items if s.strip()]
    for name in names:
        if name not in STRATEGIES:
            raise GpuctkError(f"invalid device list strategy {name!r} (one of {', '.join(STRATEGIES)})")
    return [s for s in STRATEGIES if s in names]


def any_cdi(strategies: Iterable[str]) -> bool:
    return any(s.startswith("cdi-") for s in strategies)


def all_cdi(strategies: Iterable[str]) -> bool:
    s = list(strategies)
    return bool(s) and all(x.startswith("cdi-") for x in s)


def annotated_id_base(device_id: str) -> str:
    """Strip the time-slicing/MPS replica suffix: ``GPU-x::3`` -> ``GPU-x``."""
    return device_id.split("::", 1)[0]


def mig_resource_name(profile: str, strategy: str) -> str:
    """Resource name a MIG device is advertised under (NVIDIA/k8s-device-plugin ``internal/rm``).

    ``single`` -> ``nvidia.com/gpu``; ``mixed`` -> ``nvidia.com/mig-<profile>`` with ``+``
    replaced by ``.`` (``1g.10gb+me`` -> ``nvidia.com/mig-1g.10gb.me``). ``none`` does not
    advertise MIG devices at all.
    """
    if strategy not in MIG_STRATEGIES:
        raise GpuctkError(f"invalid MIG strategy {strategy!r} (one of {', '.join(MIG_STRATEGIES)})")
    if strategy == "none":
        raise GpuctkError("MIG strategy 'none' does not advertise MIG devices")
    if strategy == "single":
        return "nvidia.com/gpu"
    return "nvidia.com/mig-" + profile.replace("+", ".")


def advertised_resources(gpus: list[dict[str, Any]], strategy: str) -> dict[str, list[str]]:
    """Resource name -> device ids, for ``gpus`` as parsed by ``parse_nvidia_smi_xml``.

    With a MIG strategy other than ``none`` a MIG-enabled GPU is never advertised whole.
    ``single`` insists on identical MIG devices and a uniform MIG mode, like the plugin.
    """
    if strategy not in MIG_STRATEGIES:
        raise GpuctkError(f"invalid MIG strategy {strategy!r} (one of {', '.join(MIG_STRATEGIES)})")
    out: dict[str, list[str]] = {}
    mig_on = [g for g in gpus if (g.get("mig_mode") or "") == "Enabled"]
    if strategy == "single":
        if mig_on and len(mig_on) != len(gpus):
            raise GpuctkError("mig-strategy single: all GPUs must have the same MIG mode")
        profiles = {m.get("profile") for g in mig_on for m in g.get("mig_devices") or []}
        if len(profiles) > 1:
            raise GpuctkError(
                "mig-strategy single: all MIG devices must be the same profile, found "
                + ", ".join(sorted(str(p) for p in profiles))
            )
    for g in gpus:
        if strategy != "none" and g in mig_on:
            for m in g.get("mig_devices") or []:
                name = mig_resource_name(str(m.get("profile")), strategy)
                out.setdefault(name, []).append(str(m.get("uuid")))
            continue
        out.setdefault("nvidia.com/gpu", []).append(str(g.get("uuid")))
    return out


@dataclass
class PluginConfig:
    """The flags that shape Allocate (names follow the plugin's config keys)."""

    device_list_strategy: list[str] = field(default_factory=lambda: ["envvar"])
    device_id_strategy: str = "uuid"
    cdi_annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX
    imex_channels: list[str] = field(default_factory=list)
    gdrcopy_enabled: bool = False
    gds_enabled: bool = False
    mofed_enabled: bool = False
    mps_root: str | None = None  # MPS sharing on: pipe/shm dir root
    pass_device_specs: bool = False
    dev_root: str = "/"

    def __post_init__(self) -> None:
        self.device_list_strategy = parse_strategies(self.device_list_strategy)
        if self.device_id_strategy not in DEVICE_ID_STRATEGIES:
            raise GpuctkError(f"invalid device id strategy {self.device_id_strategy!r} (uuid or index)")


def cdi_device_name(device_id: str, cls: str = "gpu", vendor: str = CDI_VENDOR) -> str:
    return f"{vendor}/{cls}={device_id}"


def _unique(ids: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in ids:
        seen.setdefault(annotated_id_base(i), None)
    return list(seen)


def allocate_response(
    cfg: PluginConfig,
    device_ids: list[str],
    *,
    index_of: dict[str, str] | None = None,
    response_id: str | None = None,
    qualified_name: Callable[[str, str], str] | None = None,
    device_nodes: list[str] | None = None,
) -> dict[str, Any]:
    """One ``ContainerAllocateResponse`` as a dict: ``envs``, ``mounts``, ``devices``,
    ``annotations``, ``cdiDevices`` (empty ones omitted).

    ``index_of`` maps device ids (UUIDs) to indices for ``device_id_strategy=index``;
    ``response_id`` is the annotation-key suffix (the plugin uses a fresh UUIDv4);
    ``qualified_name(cls, id)`` overrides the CDI name (the upstream tests use
    ``nvidia.com/<cls>=<id>``); ``device_nodes`` are the ``/dev`` paths passed with
    ``pass_device_specs``.
    """
    ids = _unique(device_ids)
    if cfg.device_id_strategy == "index":
        mapping = index_of or {}
        missing = [i for i in ids if i not in mapping and not i.isdigit()]
        if missing:
            raise GpuctkError(f"no index known for device {missing[0]} (device-id-strategy index)")
        ids = [mapping.get(i, i) for i in ids]
    qn = qualified_name or (lambda cls, i: cdi_device_name(i, cls))
    resp: dict[str, Any] = {"envs": {}, "mounts": [], "devices": [], "annotations": {}, "cdiDevices": []}
    strategies = cfg.device_list_strategy

    if any_cdi(strategies):
        names = [qn("gpu", i) for i in ids]
        names += [qn("imex-channel", c) for c in cfg.imex_channels]
        for flag, cls in (
            (cfg.gdrcopy_enabled, "gdrcopy"),
            (cfg.gds_enabled, "gds"),
            (cfg.mofed_enabled, "mofed"),
        ):
            if flag:
                names.append(qn(cls, "all"))
        if names:
            if "cdi-annotations" in strategies:
                key_id = response_id if response_id is not None else str(_uuid.uuid4())
                key = cfg.cdi_annotation_prefix + f"{PLUGIN_NAME}_{key_id}"
                resp["annotations"][key] = ",".join(names)
            if "cdi-cri" in strategies:
                resp["cdiDevices"] = [{"name": n} for n in names]

    if cfg.mps_root:
        resp["envs"]["CUDA_MPS_PIPE_DIRECTORY"] = "/mps/nvidia.com/gpu/pipe"
        resp["mounts"] += [
            {"containerPath": "/mps/nvidia.com/gpu/pipe", "hostPath": f"{cfg.mps_root}/nvidia.com/gpu/pipe"},
            {"containerPath": "/dev/shm", "hostPath": f"{cfg.mps_root}/shm"},
        ]
    for flag, env in (
        (cfg.gdrcopy_enabled, "NVIDIA_GDRCOPY"),
        (cfg.gds_enabled, "NVIDIA_GDS"),
        (cfg.mofed_enabled, "NVIDIA_MOFED"),
    ):
        if flag:
            resp["envs"][env] = "enabled"

    if not all_cdi(strategies):
        if "envvar" in strategies:
            resp["envs"]["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
            if cfg.imex_channels:
                resp["envs"]["NVIDIA_IMEX_CHANNELS"] = ",".join(cfg.imex_channels)
        if "volume-mounts" in strategies:
            resp["envs"]["NVIDIA_VISIBLE_DEVICES"] = VOLUME_MOUNT_DIR
            for i in ids:
                resp["mounts"].append({"containerPath": f"{VOLUME_MOUNT_DIR}/{i}", "hostPath": "/dev/null"})
            for c in cfg.imex_channels:
                resp["mounts"].append(
                    {"containerPath": f"{VOLUME_MOUNT_DIR}/imex/{c}", "hostPath": "/dev/null"}
                )
        if cfg.pass_device_specs:
            root = cfg.dev_root.rstrip("/")
            for path in device_nodes or []:
                resp["devices"].append({"containerPath": path, "hostPath": root + path, "permissions": "rw"})
    return {k: v for k, v in resp.items() if v}
