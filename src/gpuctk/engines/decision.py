"""The native-CDI decision: engine facts in, how GPU containers get their devices out.

One pure function, :func:`decide`, used by ``gpuctk k8s plan``/``k8s manifests`` (per node
group), ``gpuctk runtime detect``/``runtime configure --cdi auto`` and ``gpuctk install
--cdi auto`` (per node), so that they can never disagree. Stdlib only; no I/O.

The rule (the design of NVIDIA/gpu-operator PR #1285, which never merged, on top of the
GPU Operator's shipped CDI mode of ``controllers/object_controls.go``):

- with CDI wanted, use the engine's own CDI injection where the engine has it
  (containerd >= 1.7 with ``enable_cdi``, >= 2.0 by default; CRI-O >= 1.23.2; Docker >= 25
  with ``features.cdi``);
- where it has not (containerd < 1.7), make the nvidia runtime the *default* runtime, in
  ``cdi`` mode, reading ``nvidia.cdi.k8s.io/`` annotations, pass those annotations through
  containerd (``container_annotations``), and have the device plugin write them
  (``deviceListStrategy: envvar,cdi-annotations``, ``cdiAnnotationPrefix: nvidia.cdi.k8s.io/``);
- without CDI wanted, the legacy path: the nvidia runtime (as a RuntimeClass handler, not
  the default) reads ``NVIDIA_VISIBLE_DEVICES``; on CRI-O the OCI prestart hook.
- the GPU Operator's NRI mode makes no engine edits at all and injects natively.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gpuctk.engines.versions import Version, cdi_support, format_version, normalize_engine
from gpuctk.errors import GpuctkError

NATIVE = "native"
NVIDIA_RUNTIME_CDI = "nvidia-runtime-cdi"
LEGACY = "legacy"
UNDECIDED = "undecided"
PATHS = (NATIVE, NVIDIA_RUNTIME_CDI, LEGACY, UNDECIDED)

NATIVE_PREFIX = "cdi.k8s.io/"
NVIDIA_PREFIX = "nvidia.cdi.k8s.io/"

ROW_TITLES = {
    1: "containerd >= 2.0: native CDI on by default",
    2: "containerd 1.7.2+ with enable_cdi: native CDI",
    3: "containerd with CDI off (or not known on): legacy injection",
    4: "containerd 1.7.0-1.7.1 with CDI: annotations only",
    5: "containerd < 1.7: no native CDI",
    6: "CRI-O >= 1.23.2: native CDI on by default",
    7: "CRI-O with the OCI prestart hook (no native CDI)",
    8: "GPU Operator NRI plugin mode",
    9: "Docker / cri-dockerd",
    10: "unknown runtime: no decision",
}


@dataclass(frozen=True)
class EngineFacts:
    """What the decision reads.

    ``cdi_in_config``: the engine config's CDI switch (containerd ``enable_cdi`` as
    ``containerd config dump`` prints it, Docker ``features.cdi``); None where the key is
    absent (an engine that does not know it, or a cluster view that cannot see it).
    ``cdi_wanted``: the user's intent (``--cdi auto`` and the GPU Operator's default
    ``cdi.enabled`` both mean True). ``engine_managed``: the engine config will be edited
    to match the decision (``configure``/``install``, or the GPU Operator's toolkit), so a
    CDI switch that is off now will be turned on. ``nri``: GPU Operator
    ``cdi.nriPluginEnabled``.
    """

    engine: str
    version: Version | None
    cdi_in_config: bool | None = None
    cdi_wanted: bool = True
    engine_managed: bool = True
    nri: bool = False


@dataclass
class Decision:
    row: int
    path: str  # native | nvidia-runtime-cdi | legacy | undecided
    # engine edits
    nvidia_default: bool = False
    enable_cdi: bool = False  # turn the engine's CDI switch on (enable_cdi / features.cdi)
    cdi_keys_allowed: bool = False  # the engine knows enable_cdi / cdi_spec_dirs at all
    container_annotations: list[str] = field(default_factory=list)  # containerd runtime globs
    engine_edits: bool = True  # False in NRI mode: nothing to configure
    # the nvidia runtime (config.toml)
    shim_mode: str = "auto"
    annotation_prefixes: list[str] = field(default_factory=list)
    # the device plugin
    device_list_strategy: list[str] = field(default_factory=list)
    cdi_annotation_prefix: str | None = None
    cri_field: bool = False
    # workloads
    needs_runtime_class: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return ROW_TITLES[self.row]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["title"] = self.title
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "decision") -> Decision:
        """A recorded decision (``as_dict`` output, e.g. from the node's decision record)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if known.get("row") not in ROW_TITLES or known.get("path") not in PATHS:
            raise GpuctkError(
                f"{source}: field decision: not a gpuctk decision (row/path missing or unknown)"
            )
        try:
            return cls(**known)
        except TypeError as exc:
            raise GpuctkError(f"{source}: field decision: {exc}") from None


def _native(row: int, support: dict[str, Any], *, enable: bool, reasons: list[str]) -> Decision:
    cri_field = bool(support.get("cri_field")) and row != 4
    return Decision(
        row=row,
        path=NATIVE,
        enable_cdi=enable,
        cdi_keys_allowed=True,
        shim_mode="cdi",
        annotation_prefixes=[NATIVE_PREFIX],
        # the CRI CDIDevices field where the engine honours it (the kubelet fills it from the
        # plugin's cdi-cri response), else cdi.k8s.io/ annotations
        device_list_strategy=["cdi-cri"] if cri_field else ["cdi-annotations"],
        cdi_annotation_prefix=NATIVE_PREFIX,
        cri_field=cri_field,
        needs_runtime_class=False,
        reasons=reasons,
    )


def _legacy(row: int, *, runtime_class: bool, keys: bool, reasons: list[str]) -> Decision:
    return Decision(
        row=row,
        path=LEGACY,
        cdi_keys_allowed=keys,
        shim_mode="auto",
        device_list_strategy=["envvar"],
        needs_runtime_class=runtime_class,
        reasons=reasons,
    )


def decide(facts: EngineFacts) -> Decision:
    """The decision for one engine (a node, or a group of nodes sharing runtime + version)."""
    engine = normalize_engine(facts.engine)
    version = facts.version
    support = cdi_support(engine, version)
    vs = format_version(version)
    why = [support["reason"]]

    if engine not in ("containerd", "crio", "docker") or version is None:
        what = engine or "unknown engine"
        return Decision(
            row=10,
            path=UNDECIDED,
            engine_edits=False,
            reasons=[f"{what} {vs}: no decision without a known engine and version"],
        )

    if facts.nri and facts.cdi_wanted and engine in ("containerd", "crio"):
        d = _native(8, support, enable=False, reasons=[])
        d.engine_edits = False
        d.device_list_strategy = ["cdi-annotations", "cdi-cri"]
        d.cri_field = True
        d.reasons = [
            "GPU Operator NRI plugin mode: its NRI plugin injects CDI devices, no engine edits, "
            "no RuntimeClass"
        ]
        return d

    if engine == "docker":
        # Kubernetes on Docker goes through cri-dockerd, which passes no CDI devices before
        # Mirantis/cri-dockerd#522: the device plugin stays on envvar in every case.
        if facts.cdi_wanted and support["native_cdi"]:
            enable = bool(support["needs_enable_cdi"]) or facts.cdi_in_config is False
            d = _native(9, support, enable=enable, reasons=why)
            d.device_list_strategy = ["envvar"]
            d.cdi_annotation_prefix = None
            d.needs_runtime_class = True
            d.reasons = [
                *why,
                "`docker run --device nvidia.com/gpu=N` uses Docker's own CDI"
                + (" once features.cdi = true" if support["needs_enable_cdi"] else ""),
                "Kubernetes through cri-dockerd: envvar + runtimeClassName nvidia",
            ]
            return d
        reasons = [*why] if facts.cdi_wanted else ["CDI not wanted"]
        reasons.append("the nvidia runtime reads NVIDIA_VISIBLE_DEVICES (`docker run --runtime nvidia`)")
        return _legacy(9, runtime_class=True, keys=support["native_cdi"], reasons=reasons)

    if engine == "crio":
        if facts.cdi_wanted and support["native_cdi"] and facts.cdi_in_config is not False:
            return _native(6, support, enable=False, reasons=why)
        reasons = [*why] if facts.cdi_wanted else ["CDI not wanted"]
        reasons.append("the OCI prestart hook injects for every container (CRIO_CONFIG_MODE=hook)")
        return _legacy(7, runtime_class=False, keys=support["native_cdi"], reasons=reasons)

    # containerd
    if not support["native_cdi"]:
        if not facts.cdi_wanted:
            return _legacy(
                5,
                runtime_class=True,
                keys=False,
                reasons=[*why, "CDI not wanted: the nvidia runtime reads NVIDIA_VISIBLE_DEVICES"],
            )
        return Decision(
            row=5,
            path=NVIDIA_RUNTIME_CDI,
            nvidia_default=True,
            cdi_keys_allowed=False,
            container_annotations=[NVIDIA_PREFIX + "*"],
            shim_mode="cdi",
            annotation_prefixes=[NVIDIA_PREFIX],
            device_list_strategy=["envvar", "cdi-annotations"],
            cdi_annotation_prefix=NVIDIA_PREFIX,
            needs_runtime_class=False,
            reasons=[
                *why,
                "CDI wanted: the nvidia runtime becomes the default runtime, in cdi mode, and injects "
                f"the devices named by {NVIDIA_PREFIX} annotations (the design of NVIDIA/gpu-operator "
                "PR #1285)",
                f"containerd passes CRI annotations to the runtime only when container_annotations "
                f'lists them: ["{NVIDIA_PREFIX}*"]',
                "nvidia is the default runtime: GPU workloads need no runtimeClassName",
            ],
        )
    if not facts.cdi_wanted:
        return _legacy(
            3,
            runtime_class=True,
            keys=True,
            reasons=[
                *why,
                "CDI not wanted: the nvidia runtime (RuntimeClass nvidia) reads NVIDIA_VISIBLE_DEVICES",
            ],
        )
    row = 1 if not support["needs_enable_cdi"] else (2 if support["cri_field"] else 4)
    if support["needs_enable_cdi"]:
        off_now = facts.cdi_in_config is not True
    else:
        off_now = facts.cdi_in_config is False
    if off_now and not facts.engine_managed:
        state = "off" if facts.cdi_in_config is False else "not known to be on"
        return _legacy(
            3,
            runtime_class=True,
            keys=True,
            reasons=[
                *why,
                f"CDI is {state} in this containerd's config and nothing will turn it on: CDI devices "
                "would be dropped silently, so the nvidia runtime (RuntimeClass nvidia) injects",
            ],
        )
    reasons = [*why]
    if off_now:
        reasons.append("enable_cdi = true is written to the CRI plugin's config")
    if row == 4:
        reasons.append(f"containerd {vs}: the CRI CDIDevices field is unreliable: annotations only")
    # 1.7: the wanted state always carries enable_cdi = true (a no-op where it is on already)
    needs_switch = bool(support["needs_enable_cdi"]) or off_now
    return _native(row, support, enable=needs_switch, reasons=reasons)


def render(d: Decision) -> str:
    """A few lines for humans (``--dry-run``, ``runtime detect``)."""
    lines = [
        f"decision: {d.path} (row {d.row}: {d.title})",
        f"  nvidia default runtime: {'yes' if d.nvidia_default else 'no'}; shim mode {d.shim_mode}"
        + (f", annotation prefixes {', '.join(d.annotation_prefixes)}" if d.annotation_prefixes else ""),
    ]
    if d.container_annotations:
        lines.append(f"  containerd container_annotations: {', '.join(d.container_annotations)}")
    if d.enable_cdi:
        lines.append("  turn the engine's CDI switch on")
    if d.device_list_strategy:
        lines.append(
            f"  device plugin: deviceListStrategy {','.join(d.device_list_strategy)}"
            + (f", cdiAnnotationPrefix {d.cdi_annotation_prefix}" if d.cdi_annotation_prefix else "")
        )
    lines.append(f"  GPU workloads need runtimeClassName: {'yes' if d.needs_runtime_class else 'no'}")
    lines += [f"  because: {r}" for r in d.reasons]
    return "\n".join(lines) + "\n"
