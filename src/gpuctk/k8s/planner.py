"""The planner: cluster facts -> how pods get a GPU, or just ``nvidia-smi``, per node group.

Per group of GPU nodes sharing runtime + version, the injection path comes from the one
native-CDI decision, :func:`gpuctk.engines.decision.decide` (the same function ``runtime
detect``, ``runtime configure --cdi auto`` and ``install --cdi auto`` use; its rows are
listed in docs/kubernetes.md), with the rules of NVIDIA/gpu-operator PR #1285 that never
shipped upstream: lenient version parsing, per-group decisions, mixed runtimes reported,
never merged, and containerd < 1.7 with CDI wanted served by the nvidia runtime as the
default runtime in cdi mode. Pure function: :func:`plan` takes the dict from
:mod:`gpuctk.k8s.facts` and returns a plain dict.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from gpuctk.engines.decision import ROW_TITLES, Decision, EngineFacts, decide
from gpuctk.engines.versions import cdi_support, format_version, parse_runtime_version
from gpuctk.k8s.deviceplugin import DEFAULT_ANNOTATION_PREFIX, any_cdi, parse_strategies

NRI_ANNOTATION_PREFIX = "nvidia.cdi.k8s.io/container."
MANAGEMENT_DEVICE = "management.nvidia.com/gpu=all"
LEGACY_PREFIX = "nvidia.cdi.k8s.io/"


def _is_gpu_node(n: dict[str, Any]) -> bool:
    return (
        bool(n.get("gpu_present"))
        or int(n.get("allocatable_gpu") or 0) > 0
        or int(n.get("capacity_gpu") or 0) > 0
    )


def _group_key(n: dict[str, Any]) -> tuple[str, str, Any]:
    engine, version = parse_runtime_version(n.get("runtime_version") or "")
    return engine or "unknown", format_version(version), n.get("cdi_enabled")


def _current_plugin(facts: dict[str, Any]) -> dict[str, Any] | None:
    """Effective device-plugin settings: its DaemonSet env, else what the operator would set."""
    dp = facts.get("device_plugin")
    cp = facts.get("cluster_policy")
    if dp:
        env = dp.get("env") or {}
        try:
            strategies = parse_strategies(env.get("DEVICE_LIST_STRATEGY"))
        except Exception:
            strategies = []
        return {
            "source": f"DaemonSet {dp.get('namespace', '')}/{dp.get('name', '')}".replace(" /", " "),
            "strategies": strategies,
            "annotation_prefix": env.get("CDI_ANNOTATION_PREFIX") or DEFAULT_ANNOTATION_PREFIX,
            "device_id_strategy": env.get("DEVICE_ID_STRATEGY") or "uuid",
            "raw_strategy": env.get("DEVICE_LIST_STRATEGY", ""),
        }
    if cp:
        cdi_on = cp["cdi_enabled"]
        return {
            "source": f"ClusterPolicy {cp.get('name', '')}",
            "strategies": ["cdi-annotations", "cdi-cri"] if cdi_on else ["envvar"],
            "annotation_prefix": DEFAULT_ANNOTATION_PREFIX,
            "device_id_strategy": "uuid",
            "raw_strategy": "cdi-annotations,cdi-cri" if cdi_on else "envvar",
        }
    return None


def cdi_intent(facts: dict[str, Any], nodes: list[dict[str, Any]]) -> bool:
    """Whether the cluster wants CDI: the GPU Operator's ``cdi.enabled``; else a node marked
    CDI-enabled (``--cdi-enabled``, annotation gpuctk.nvidia.com/cdi-enabled=true); else a
    device plugin that uses no cdi-* strategy says no; with none of these, yes (auto)."""
    cp = facts.get("cluster_policy")
    if cp:
        return bool(cp["cdi_enabled"])
    if any(n.get("cdi_enabled") is True for n in nodes):
        return True
    current = _current_plugin(facts)
    if current is not None:
        return any_cdi(current["strategies"])
    return True


def _recorded(facts: dict[str, Any], nodes: list[dict[str, Any]]) -> Decision | None:
    """The decision recorded on every node of the group (all the same), else None."""
    records = facts.get("recorded_decisions") or {}
    got = [records.get(n["name"]) for n in nodes]
    first = got[0] if got else None
    if not isinstance(first, dict) or any(r != first for r in got):
        return None
    return Decision.from_dict(first, f"decision record of node {nodes[0]['name']}")


def group_decision(
    engine: str,
    version: tuple[int, int, int] | None,
    cdi_known: bool | None,
    cp: dict[str, Any] | None,
    wanted: bool,
) -> Decision:
    """The decision for one group: what the node knows about its CDI switch, and whether the
    GPU Operator's toolkit will set it (CDI_ENABLED turns on enable-cdi-in-runtime,
    NVIDIA/nvidia-container-toolkit ``cmd/nvidia-ctk-installer/container/runtime/runtime.go``)."""
    managed = bool(cp and cp["cdi_enabled"] and cp["toolkit_enabled"])
    return decide(
        EngineFacts(
            engine if engine != "unknown" else "",
            version,
            cdi_in_config=cdi_known,
            cdi_wanted=wanted,
            engine_managed=managed,
            nri=bool(cp and cp["nri_plugin_enabled"]),
        )
    )


def _toolkit_env(d: Decision, engine: str, rc_name: str) -> dict[str, str]:
    """The GPU Operator toolkit container's env that applies ``d`` (upstream names)."""
    row = d.row
    env: dict[str, str] = {}
    if d.path == "native" and row != 9:
        env.update(
            {
                "CDI_ENABLED": "true",
                "NVIDIA_RUNTIME_SET_AS_DEFAULT": "false",
                "NVIDIA_CONTAINER_RUNTIME_MODE": "cdi",
            }
        )
        if engine == "crio":
            env["CRIO_CONFIG_MODE"] = "config"
        if row == 8:
            env["ENABLE_NRI_PLUGIN"] = "true"
    elif d.path == "nvidia-runtime-cdi":
        # NVIDIA/gpu-operator PR #1285's toolkit env for a runtime without native CDI
        env.update(
            {
                "CDI_ENABLED": "true",
                "NVIDIA_RUNTIME_SET_AS_DEFAULT": "true",
                "NVIDIA_CONTAINER_RUNTIME_MODE": "cdi",
                "NVIDIA_CONTAINER_RUNTIME_MODES_CDI_ANNOTATION_PREFIXES": ",".join(d.annotation_prefixes),
            }
        )
    elif row in (3, 5):
        env.update({"CDI_ENABLED": "false", "NVIDIA_RUNTIME_SET_AS_DEFAULT": "false"})
    elif row == 7:
        env.update({"CDI_ENABLED": "false", "CRIO_CONFIG_MODE": "hook"})
    elif row == 9:
        env.update({"CDI_ENABLED": "false"})
    if engine == "containerd" and row not in (8, 10):
        env["CONTAINERD_RUNTIME_CLASS"] = rc_name
    return env


def _recommended_strategy(d: Decision, operator: bool) -> list[str]:
    if d.row in (1, 2, 6) and operator and d.cri_field:
        # what the GPU Operator itself sets (transformDevicePluginCtrForCDI)
        return ["cdi-annotations", "cdi-cri"]
    return list(d.device_list_strategy)


def _injection(strategies: list[str], prefix: str, row: int, native: bool, cri_field: bool) -> str:
    """Who injects a device-plugin GPU: ``native``, ``hook``, ``nvidia-runtime`` or ``none``
    (``unknown`` is used for row 10)."""
    if native and (
        ("cdi-cri" in strategies and cri_field)
        or ("cdi-annotations" in strategies and prefix == DEFAULT_ANNOTATION_PREFIX)
    ):
        return "native"
    if row == 7:
        return "hook" if "envvar" in strategies else "none"
    if row == 8:
        # NRI mode: no RuntimeClass exists, so only native CDI reaches the container
        return "none"
    if (
        "envvar" in strategies
        or "volume-mounts" in strategies
        or ("cdi-annotations" in strategies and prefix != DEFAULT_ANNOTATION_PREFIX)
    ):
        return "nvidia-runtime"
    return "none"


def _plan_group(
    key: tuple[str, str, Any],
    nodes: list[dict[str, Any]],
    facts: dict[str, Any],
    current: dict[str, Any] | None,
) -> dict[str, Any]:
    engine, version_s, cdi_known = key
    raw = sorted({n.get("runtime_version") or "" for n in nodes})
    _, version = parse_runtime_version(raw[0]) if raw else ("", None)
    cp = facts.get("cluster_policy")
    rc_names = {rc["name"] for rc in facts.get("runtime_classes") or []}
    rc_name = (cp or {}).get("runtime_class") or "nvidia"
    rc_exists = rc_name in rc_names
    support = cdi_support(engine, version) if engine != "unknown" else cdi_support("", None)
    recorded = _recorded(facts, nodes)
    if recorded is not None:
        d = recorded  # the decision the nodes applied (gpuctk install --cdi auto): not guessed again
    else:
        d = group_decision(engine, version, cdi_known, cp, cdi_intent(facts, nodes))
    row = d.row
    native = d.path == "native" and row != 9
    # the engine's own CDI state once the plan is applied (None: not known)
    cdi_enabled = True if native else (False if row in (5, 7) else cdi_known)
    cri_field = d.cri_field
    warnings: list[str] = []

    recommended = _recommended_strategy(d, operator=cp is not None)
    prefix = d.cdi_annotation_prefix or DEFAULT_ANNOTATION_PREFIX
    strategies = current["strategies"] if current else recommended
    cur_prefix = current["annotation_prefix"] if current else prefix
    injection = "unknown" if row == 10 else _injection(strategies, cur_prefix, row, native, cri_field)

    if engine == "containerd" and support["needs_enable_cdi"] and cdi_known is None and row in (2, 4):
        warnings.append(
            "enable_cdi inferred from the GPU Operator's cdi.enabled; verify with `gpuctk snapshot` on a node"
        )
    if row == 3:
        if current and injection == "none":
            warnings.append(
                f"device plugin strategy {','.join(strategies)} needs CDI but this containerd has it off: devices "
                "are silently dropped; set enable_cdi = true (gpuctk runtime configure --runtime containerd "
                "--enable-cdi) or use deviceListStrategy envvar"
            )
        if cdi_known is None:
            warnings.append(
                "containerd 1.7: enable_cdi not known to be on, assuming off; set it and mark the "
                "nodes with annotation gpuctk.nvidia.com/cdi-enabled=true to get native CDI (row 2)"
            )
    if d.path == "nvidia-runtime-cdi" and cp:
        warnings.append(
            "GPU Operator cdi.enabled=true on containerd < 1.7: the operator has no fallback for a "
            "runtime without native CDI; set toolkit.env "
            + " ".join(f"{k}={v}" for k, v in _toolkit_env(d, engine, rc_name).items() if k != "CDI_ENABLED")
            + " and the device plugin's DEVICE_LIST_STRATEGY=envvar,cdi-annotations "
            "CDI_ANNOTATION_PREFIX=nvidia.cdi.k8s.io/ (gpuctk k8s manifests prints them), or run "
            "`gpuctk install --cdi auto` on the nodes"
        )
    if row == 10:
        warnings.append(
            f"container runtime {raw[0] if raw else ''!r} not recognised: no decision; "
            "pin GPU workloads to nodes with a known runtime"
        )
    if current and row not in (3, 10) and injection == "none":
        warnings.append(
            f"device plugin strategy {','.join(strategies) or '(none)'} (prefix {cur_prefix}) "
            f"injects nothing on this runtime; use {','.join(recommended)}"
        )
    elif (
        current
        and row != 10
        and injection != "none"
        and set(strategies) != set(recommended)
        and not (injection == "native" and native)
    ):
        warnings.append(
            f"device plugin strategy {','.join(strategies)} differs from the recommended "
            f"{','.join(recommended)}"
        )

    # Allocated GPUs: always the resource; runtimeClassName only where the nvidia runtime
    # must do the injection and NRI mode is off (docs/kubernetes.md).
    gpu_rc: str | None = None
    needs_rc = injection == "nvidia-runtime" and row != 8 and not d.nvidia_default
    if needs_rc:
        gpu_rc = rc_name
        if not rc_exists:
            warnings.append(
                f"RuntimeClass {rc_name!r} not found: create it (gpuctk k8s manifests) unless "
                "nvidia is the node's default runtime"
            )
    gpu_workload = {
        "resources": {"limits": {"nvidia.com/gpu": "N"}},
        "runtimeClassName": gpu_rc,
        "needs_runtime_class": needs_rc,
        "injected_by": injection,
    }

    management = _management(row, rc_name, rc_exists, warnings)
    return {
        "runtime": engine,
        "version": version_s,
        "runtime_versions": raw,
        "nodes": sorted(n["name"] for n in nodes),
        "allocatable_gpus": sum(int(n.get("allocatable_gpu") or 0) for n in nodes),
        "row": row,
        "case": ROW_TITLES[row],
        "native_cdi": native,
        "cdi_enabled": cdi_enabled,
        "reason": support["reason"],
        "decision": d.as_dict(),
        "decision_source": "node record" if recorded is not None else "planned",
        "device_plugin": {
            "recommended_strategy": recommended,
            "annotation_prefix": prefix if any(s.startswith("cdi-") for s in recommended) else None,
            "current_strategy": current["strategies"] if current else None,
            "current_annotation_prefix": cur_prefix if current else None,
        },
        "toolkit": _toolkit_env(d, engine, rc_name),
        "gpu_workload": gpu_workload,
        "management": management,
        "warnings": warnings,
    }


def _management(row: int, rc_name: str, rc_exists: bool, warnings: list[str]) -> dict[str, Any]:
    """nvidia-smi/NVML access without a device-plugin GPU, in the order of docs/kubernetes.md."""
    if row == 8:
        return {
            "method": "nri-annotation",
            "runtimeClassName": None,
            "env": {},
            "annotations": {NRI_ANNOTATION_PREFIX + "<container>": MANAGEMENT_DEVICE},
            "consumes_gpu": False,
            "note": "no RuntimeClass exists in NRI mode",
        }
    if row == 7:
        return {
            "method": "env",
            "runtimeClassName": None,
            "env": {"NVIDIA_VISIBLE_DEVICES": "all"},
            "annotations": {},
            "consumes_gpu": False,
            "note": "the OCI prestart hook injects for every container",
        }
    if row == 10:
        return {
            "method": "none",
            "runtimeClassName": None,
            "env": {},
            "annotations": {},
            "consumes_gpu": False,
            "note": "unknown runtime",
        }
    if rc_exists:
        note = (
            "needs accept-nvidia-visible-devices-envvar-when-unprivileged = true (the default) "
            "or a privileged pod"
        )
        if row in (1, 2, 4, 6):
            note = f"the {rc_name} handler in cdi mode resolves {MANAGEMENT_DEVICE}; " + note
        return {
            "method": "runtime-class",
            "runtimeClassName": rc_name,
            "env": {"NVIDIA_VISIBLE_DEVICES": "all"},
            "annotations": {},
            "consumes_gpu": False,
            "note": note,
        }
    warnings.append(
        f"no RuntimeClass {rc_name!r}: management-only access falls back to requesting "
        "nvidia.com/gpu: 1, which pends when all GPUs are allocated"
    )
    return {
        "method": "gpu-request",
        "runtimeClassName": None,
        "env": {},
        "annotations": {},
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
        "consumes_gpu": True,
        "note": f"create RuntimeClass {rc_name!r} (gpuctk k8s manifests) to avoid consuming a GPU",
    }


def plan(facts: dict[str, Any]) -> dict[str, Any]:
    """The plan for a cluster: one entry per group of GPU nodes sharing runtime + version."""
    nodes = facts.get("nodes") or []
    gpu_nodes = [n for n in nodes if _is_gpu_node(n)]
    groups: OrderedDict[tuple[str, str, Any], list[dict[str, Any]]] = OrderedDict()
    for n in sorted(gpu_nodes, key=lambda n: n["name"]):
        groups.setdefault(_group_key(n), []).append(n)
    current = _current_plugin(facts)
    planned = [_plan_group(k, v, facts, current) for k, v in groups.items()]
    warnings: list[str] = []
    engines = sorted({g["runtime"] for g in planned})
    mixed = len(engines) > 1
    if mixed:
        msg = (
            f"mixed container runtimes across GPU nodes ({', '.join(engines)}): decided per group; "
            "cluster-wide settings (GPU Operator RUNTIME, device-plugin strategy) cannot suit all groups; "
            "pin workloads with a nodeSelector per group"
        )
        warnings.append(msg)
        for g in planned:
            g["warnings"].insert(
                0,
                f"mixed runtimes: this group ({g['runtime']}) differs from others; "
                "pin its workloads to these nodes",
            )
    elif len({(g["row"], g["native_cdi"]) for g in planned}) > 1:
        warnings.append("GPU node groups need different injection paths: see each group")
    if not gpu_nodes:
        warnings.append(
            "no GPU nodes: no node has label nvidia.com/gpu.present=true or allocatable nvidia.com/gpu"
        )
    cp = facts.get("cluster_policy")
    return {
        "gpu_nodes": len(gpu_nodes),
        "other_nodes": len(nodes) - len(gpu_nodes),
        "mixed_runtimes": mixed,
        "runtime_classes": sorted(rc["name"] for rc in facts.get("runtime_classes") or []),
        "device_plugin": current,
        "gpu_operator": cp,
        "groups": planned,
        "warnings": warnings,
    }


def render_table(p: dict[str, Any]) -> str:
    """Human-readable plan."""
    lines: list[str] = []
    lines.append(
        f"GPU nodes: {p['gpu_nodes']} (other nodes: {p['other_nodes']}); RuntimeClasses: "
        + (", ".join(p["runtime_classes"]) or "none")
    )
    dp = p.get("device_plugin")
    if dp:
        lines.append(
            f"device plugin: {','.join(dp['strategies']) or '?'} prefix {dp['annotation_prefix']} "
            f"ids {dp['device_id_strategy']} ({dp['source']})"
        )
    else:
        lines.append("device plugin: not found")
    if p.get("gpu_operator"):
        cp = p["gpu_operator"]
        lines.append(
            f"GPU Operator: cdi.enabled={str(cp['cdi_enabled']).lower()} "
            f"nriPluginEnabled={str(cp['nri_plugin_enabled']).lower()} runtimeClass={cp['runtime_class']}"
        )
    for w in p["warnings"]:
        lines.append(f"WARNING: {w}")
    for i, g in enumerate(p["groups"], 1):
        lines.append("")
        lines.append(
            f"[group {i}] {g['runtime']} {g['version']}  nodes: {', '.join(g['nodes'])}  "
            f"(allocatable GPUs: {g['allocatable_gpus']})"
        )
        rows = [
            ("case", f"row {g['row']}: {g['case']}"),
            ("native CDI", "yes" if g["native_cdi"] else "no"),
            (
                "injection path",
                f"{g['decision']['path']}; nvidia default runtime: "
                + ("yes" if g["decision"]["nvidia_default"] else "no"),
            ),
            ("why", g["reason"]),
            ("device-list strategy", ",".join(g["device_plugin"]["recommended_strategy"]) or "-"),
            ("annotation prefix", g["device_plugin"]["annotation_prefix"] or "-"),
            ("toolkit", " ".join(f"{k}={v}" for k, v in g["toolkit"].items()) or "-"),
        ]
        gw = g["gpu_workload"]
        if gw["injected_by"] == "none":
            rows.append(
                ("GPU workloads", "BROKEN: the device plugin's strategy injects nothing here (see warnings)")
            )
        elif gw["injected_by"] == "unknown":
            rows.append(("GPU workloads", "undecided (unknown runtime)"))
        else:
            rows.append(
                (
                    "GPU workloads",
                    "limits nvidia.com/gpu: N; "
                    + (
                        f"runtimeClassName: {gw['runtimeClassName']}"
                        if gw["runtimeClassName"]
                        else "no runtimeClassName"
                    )
                    + f" ({gw['injected_by']} injection)",
                )
            )
        m = g["management"]
        desc = {
            "runtime-class": f"runtimeClassName: {m['runtimeClassName']} + NVIDIA_VISIBLE_DEVICES=all (no GPU consumed)",
            "nri-annotation": "annotation " + ", ".join(f"{k}: {v}" for k, v in m["annotations"].items()),
            "env": "NVIDIA_VISIBLE_DEVICES=all (no RuntimeClass, no GPU consumed)",
            "gpu-request": "nvidia.com/gpu: 1 (consumes a GPU)",
            "none": "-",
        }[m["method"]]
        rows.append(("nvidia-smi only", desc))
        width = max(len(k) for k, _ in rows)
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
        lines += [f"  WARNING: {w}" for w in g["warnings"]]
    return "\n".join(lines) + "\n"
