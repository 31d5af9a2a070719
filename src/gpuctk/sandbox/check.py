"""Check an OCI spec against the runsc + nvproxy contract (rules and sources in docs/gvisor.md).

``analyze(spec) -> Report``: which flow the spec is in, whether runsc detects a GPU request, whether
runsc would also run ``nvidia-container-cli``, and one ``Finding`` per applicable rule (C1–C8 always
when a GPU is involved; L1–L8 for the legacy-hook flow; D1–D7 for CDI and CSV; S1–S5 for CSV).
Pure: plain dicts in, plain data out. Stdlib-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from gpuctk.sandbox import contract as c


@dataclass(frozen=True)
class Finding:
    rule: str
    status: str  # "pass" | "warn" | "fail"
    reason: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    flow: str  # "legacy" | "cdi" | "csv" | "unknown" (GPU wanted, no edits) | "none"
    gpu_detected: bool
    detected_via: str
    runs_nvidia_container_cli: bool
    effective_visible_devices: str | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.status == "fail" for f in self.findings)

    def to_dict(self) -> dict:
        return {
            "flow": self.flow,
            "gpu_detected": self.gpu_detected,
            "detected_via": self.detected_via,
            "runs_nvidia_container_cli": self.runs_nvidia_container_cli,
            "effective_visible_devices": self.effective_visible_devices,
            "ok": not self.failed,
            "findings": [f.to_dict() for f in self.findings],
        }


FIX_VOID = (
    'make NVIDIA_VISIBLE_DEVICES a single "void" entry (replace the container\'s value, do not '
    'append): set nvidia-container-runtime.sandbox = "gvisor" or use '
    "`gpuctk cdi generate --sandbox gvisor`, or drop the nvidia-cdi-hook hooks"
)
FIX_SANDBOX = (
    'set nvidia-container-runtime.sandbox = "gvisor" in the toolkit config (gpuctk-runtime edits the spec)'
)


@dataclass
class _View:
    """Everything the rules need, computed once."""

    spec: dict
    flags: dict
    runsc_toml: dict | None
    env: list
    has_process: bool
    devices: list[dict]
    gpu_devices: list[str]
    has_ctl: bool
    cdi_hooks: list[dict]
    legacy_hooks: list[dict]
    alias_hooks: list[dict]
    toolkit_hooks: list[dict]
    hook_kind: str | None
    effective: str | None
    runs_cli: bool
    tegra: bool
    intent: list[str]
    annotations: dict


def _view(spec: dict, runsc_toml: dict | None) -> _View:
    flags = c.as_dict((runsc_toml or {}).get("runsc_config"))
    env_raw = c.env_entries(spec)
    env = env_raw or []
    devs = c.devices(spec)
    paths = [d["path"] for d in devs if isinstance(d.get("path"), str)]
    gpu_devices = [p for p in paths if c.is_gpu_related(p)]
    all_hooks = [
        h
        for stage in (
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        )
        for h in c.hooks(spec, stage)
    ]
    cdi_hooks = [h for h in c.hooks(spec, "createContainer") if c.is_runsc_cdi_hook(h)]
    legacy_hooks = [h for h in c.hooks(spec, "prestart") if c.is_runsc_legacy_hook(h)]
    alias_hooks = [h for h in c.hooks(spec, "prestart") if c.is_legacy_hook_alias(h)]
    toolkit_hooks = [h for h in all_hooks if c.toolkit_hook_name(h) is not None]
    if cdi_hooks:
        hook_kind: str | None = "cdi"
        effective = c.cdi_effective_visible_devices(env)
    elif legacy_hooks or c.flag_true(flags, "nvproxy-docker"):
        hook_kind = "legacy"
        effective = c.runsc_env_lookup(env, c.NVD)
    else:
        hook_kind, effective = None, c.toolkit_env_lookup(env, c.NVD)
    runs_cli = hook_kind is not None and env_raw is not None and c.is_request(effective)
    mounts = [m for m in c.as_list(spec.get("mounts")) if isinstance(m, dict)]
    tegra = any(c.is_tegra_node(p) for p in paths) or any(
        m.get("destination") == "/etc/nv_tegra_release" or "/tegra" in str(m.get("destination", ""))
        for m in mounts
    )
    annotations = c.as_dict(spec.get("annotations"))
    intent = []
    if gpu_devices:
        intent.append("GPU device nodes")
    if toolkit_hooks or legacy_hooks or alias_hooks:
        intent.append("NVIDIA hooks")
    if any(c.is_request(v) for v in c.env_values(env, c.NVD)):
        intent.append("NVIDIA_VISIBLE_DEVICES=" + ",".join(c.env_values(env, c.NVD)))
    if c.mounts_libcuda(mounts):
        intent.append("libcuda mounts")
    if any(str(k).startswith("cdi.k8s.io/") for k in annotations):
        intent.append("CDI annotations")
    return _View(
        spec,
        flags,
        runsc_toml,
        env,
        env_raw is not None,
        devs,
        gpu_devices,
        "/dev/nvidiactl" in paths,
        cdi_hooks,
        legacy_hooks,
        alias_hooks,
        toolkit_hooks,
        hook_kind,
        effective,
        runs_cli,
        tegra,
        intent,
        annotations,
    )


def _flow(v: _View) -> str:
    cdi_style = bool(v.gpu_devices) or any(
        c.toolkit_hook_name(h) is not None for h in c.hooks(v.spec, "createContainer")
    )
    if cdi_style:
        return "csv" if v.tegra else "cdi"
    if v.legacy_hooks or v.alias_hooks or v.hook_kind == "legacy":
        return "legacy"
    return "unknown" if v.intent else "none"


def analyze(
    spec: dict,
    driver_version: str | None = None,
    *,
    runsc_toml: dict | None = None,
    driver_table: dict | None = None,
    is_socket: Callable[[str], bool] | None = None,
) -> Report:
    """Classify ``spec`` and apply every rule of A.8 that concerns it.

    ``runsc_toml``: the parsed runsc.toml (top-level ``binary_name`` and the ``[runsc_config]`` flags),
    when known. ``is_socket``: an optional probe for mount sources (the CLI passes a stat check).
    """
    v = _view(spec, runsc_toml)
    flow = _flow(v)
    via = (
        "linux.devices /dev/nvidiactl"
        if v.has_ctl
        else f"{v.hook_kind} hook + NVIDIA_VISIBLE_DEVICES={v.effective}"
        if v.runs_cli
        else ""
    )
    report = Report(flow, bool(via), via, v.runs_cli, v.effective)
    out = report.findings
    if flow == "none":
        out.append(
            Finding(
                "C1", "pass", "no GPU request and no NVIDIA edits: runsc runs this container without nvproxy"
            )
        )
        if _is_k8s(v):
            out.append(_d7(v))
        return report
    table = driver_table if driver_table is not None else c.load_driver_table()
    out += [
        _c1(v, report),
        _c2(v),
        _c3(v, driver_version, table),
        _c4(v),
        _c5(v, is_socket),
        _c6(v),
        _c7(v),
        _c8(v),
    ]
    if flow == "legacy":
        out += [_l1(v), _l2(v), _l3(v), _l4(v), _l5(), _l6(v), _l7()]
        if v.runsc_toml is not None:
            out.append(_l8(v))
        if v.tegra:
            out.append(
                Finding(
                    "S1",
                    "fail",
                    "Tegra/CSV node reached runsc through the legacy hook; gVisor "
                    "has no hook-based CSV support (PR #12794 was not merged)",
                    'use the CDI-style CSV mode (mode = "csv" in gpuctk) with sandbox = "gvisor"',
                )
            )
    elif flow in ("cdi", "csv"):
        out += [_d1(v), _d2(v), _d3(v), _d4(v), _d5(v), _d6(v), _d7(v)]
        if flow == "csv":
            out += [
                Finding(
                    "S1",
                    "pass",
                    "CSV-mode spec carries CDI-style edits: runsc treats it like a CDI spec, so D1–D7 apply",
                ),
                _s2(v),
                _s3(v),
                _s4(v),
                Finding(
                    "S5",
                    "warn",
                    "gVisor documents CSV mode (Tegra/Jetson) as unsupported; treat "
                    "CSV + runsc as experimental",
                    "test the workload on the target board before relying on it",
                ),
            ]
    return report


def check_spec(oci_spec: dict, driver_version: str | None = None, **kwargs) -> list[Finding]:
    return analyze(oci_spec, driver_version, **kwargs).findings


# ---------------------------------------------------------------- common rules


def _nvproxy_forced(v: _View) -> str:
    if c.flag_true(v.flags, "nvproxy"):
        return "runsc.toml nvproxy = true"
    if c.go_parse_bool(v.annotations.get(c.NVPROXY_ANNOTATION)) is True:
        return f"annotation {c.NVPROXY_ANNOTATION}=true"
    return ""


def _c1(v: _View, r: Report) -> Finding:
    forced = _nvproxy_forced(v)
    if r.gpu_detected:
        how = (
            f"also forced by {forced}"
            if forced
            else (
                'auto-enabled by runsc built since 2026-05-20; older runsc needs --nvproxy (runsc.toml nvproxy = "true")'
            )
        )
        return Finding("C1", "pass", f"runsc detects the GPU request via {r.detected_via}; nvproxy {how}")
    wants = ", ".join(v.intent) or "NVIDIA edits"
    why = "no /dev/nvidiactl in linux.devices and no recognised NVIDIA hook with a non-void NVIDIA_VISIBLE_DEVICES"
    if forced:
        return Finding(
            "C1",
            "fail",
            f"nvproxy is on ({forced}) but the spec exposes no GPU to it: {why}",
            FIX_SANDBOX + ", or inject the GPU's CDI devices",
        )
    return Finding(
        "C1",
        "fail",
        f"the spec asks for a GPU ({wants}) but runsc sees no GPU request: {why}",
        FIX_SANDBOX + ", or inject CDI devices (containerd ≥ 1.7 / CRI-O) so linux.devices lists "
        "/dev/nvidiactl",
    )


def _c2(v: _View) -> Finding:
    if c.flag_true(v.flags, "rootless"):
        return Finding(
            "C2",
            "fail",
            "runsc.toml sets rootless: nvproxy needs root on the host to open /dev/nvidiactl (gvisor#11076)",
            "run runsc as root (drop rootless)",
        )
    if str(v.flags.get("nvproxy-driver-version", "")).strip():
        return Finding(
            "C2",
            "pass",
            "runsc.toml sets nvproxy-driver-version, so runsc need not open "
            "/dev/nvidiactl to detect the driver ABI",
        )
    return Finding(
        "C2",
        "warn",
        "host-side, not visible in the spec: runsc opens the host's /dev/nvidiactl to detect the driver ABI",
        "check `ls -l /dev/nvidiactl` on the host (run `nvidia-smi` once to create it), or set "
        "nvproxy-driver-version in runsc.toml [runsc_config]",
    )


def _c3(v: _View, driver_version: str | None, table: dict) -> Finding:
    dated = f"nvproxy driver list dated {table.get('date')}"
    forced = str(v.flags.get("nvproxy-driver-version", "")).strip()
    version = forced if forced and forced != "latest" else driver_version
    if not version:
        return Finding(
            "C3",
            "warn",
            f"driver version not given; runsc needs an exact match on the {dated}",
            "pass --driver-version (nvidia-smi --query-gpu=driver_version --format=csv,noheader), "
            "or compare with `runsc nvproxy list-supported-drivers`",
        )
    kind = c.classify_driver(version, table)
    near = c.nearest_supported(version, table)
    fix = (
        f"install a listed driver (nearest: {near}), or update the list if "
        "`runsc nvproxy list-supported-drivers` on this runsc shows it"
    )
    if kind == "supported":
        return Finding("C3", "pass", f"driver {version} is supported by nvproxy ({dated})")
    if kind == "arm64_only":
        return Finding(
            "C3",
            "warn",
            f"driver {version} is supported by nvproxy on arm64 hosts only ({dated})",
            "on x86_64 " + fix,
        )
    if kind == "unsupported":
        if c.flag_true(v.flags, "nvproxy-allow-unsupported-driver"):
            return Finding(
                "C3",
                "warn",
                f"driver {version} is registered as unsupported; allowed by nvproxy-allow-unsupported-driver",
                fix,
            )
        return Finding(
            "C3",
            "fail",
            f"driver {version} is registered as unsupported ({dated}): the sandbox "
            "boot is fatal ('cannot read client sync file … EOF')",
            fix + ', or set nvproxy-allow-unsupported-driver = "true" in runsc.toml',
        )
    return Finding(
        "C3",
        "fail",
        f"driver {version} is not on the {dated} (exact match): the sandbox boot is "
        "fatal ('cannot read client sync file … EOF')",
        fix,
    )


def _c4(v: _View) -> Finding:
    mig = [p for p in v.gpu_devices if c.is_mig_cap(p)]
    if mig:
        return Finding(
            "C4",
            "fail",
            f"MIG device requested ({', '.join(mig)}): nvproxy does not support MIG, "
            "the MIG capability nodes are not backed",
            "request full GPUs (index or GPU-UUID) for sandboxed containers",
        )
    unbacked = [p for p in v.gpu_devices if not c.is_backed_by_nvproxy(p)]
    if unbacked:
        return Finding(
            "C4",
            "warn",
            f"device nodes nvproxy does not back: {', '.join(unbacked)} (they appear "
            "in the sandbox but opening them fails)",
            FIX_SANDBOX + " or `gpuctk cdi generate --sandbox gvisor`, which drop them",
        )
    return Finding(
        "C4", "pass", "every GPU device node is one nvproxy backs (nvidiactl, nvidia-uvm, nvidiaN)"
    )


def _c5(v: _View, is_socket: Callable[[str], bool] | None) -> Finding:
    mounts = [m for m in c.as_list(v.spec.get("mounts")) if isinstance(m, dict)]
    bad = c.socket_mounts(mounts, is_socket)
    if bad:
        names = ", ".join(str(m.get("destination")) for m in bad)
        return Finding(
            "C5",
            "fail",
            f"UNIX-socket bind mount(s) {names}: the gofer cannot open a socket "
            "(ENXIO) and the sandbox fails with 'error setting up FS'",
            "drop the mount: CDI feature flag disable-ipc-discoverer, "
            + FIX_SANDBOX.replace("set ", "or set "),
        )
    return Finding("C5", "pass", "no UNIX-socket bind mounts")


def _c6(v: _View) -> Finding:
    bad = c.malformed_env(v.env)
    if bad:
        shown = ", ".join(bad[:3]) + (" …" if len(bad) > 3 else "")
        return Finding(
            "C6",
            "fail",
            f"malformed process.env entries ({shown}): runsc then reads every "
            "variable, NVIDIA_VISIBLE_DEVICES included, as unset",
            'make every entry NAME=VALUE (sandbox = "gvisor" drops malformed entries)',
        )
    return Finding("C6", "pass", "every process.env entry is NAME=VALUE")


def _c7(v: _View) -> Finding:
    allowed = c.allowed_capabilities(v.flags)
    raw = c.toolkit_env_lookup(v.env, c.NVCAPS)
    requested = c.split_caps(raw) if raw else []
    if not requested or requested == ["all"] or "all" in requested:
        note = "'all' is clipped to" if requested else "default capabilities within"
        return Finding("C7", "pass", f"{note} the allowed set {','.join(allowed)}")
    unknown = [x for x in requested if x not in c.KNOWN_CAPABILITIES + c.RUNSC_PRIVILEGED_CAPABILITIES]
    outside = [x for x in requested if x not in allowed and x not in unknown]
    flag_fix = (
        f"add them to runsc.toml [runsc_config] nvproxy-allowed-driver-capabilities "
        f'(e.g. "{",".join(dict.fromkeys(list(allowed) + outside))}"), or request only '
        f"{','.join(allowed)}"
    )
    if outside and v.runs_cli:
        return Finding(
            "C7",
            "fail",
            f"NVIDIA_DRIVER_CAPABILITIES requests {','.join(outside)} outside the "
            f"allowed set {','.join(allowed)}: runsc refuses on the hook path "
            "('disallowed driver capabilities requested')",
            flag_fix,
        )
    if outside:
        return Finding(
            "C7",
            "warn",
            f"NVIDIA_DRIVER_CAPABILITIES requests {','.join(outside)} outside the "
            f"allowed set {','.join(allowed)}: the sandbox's ioctl allow-list will "
            "not cover them (Vulkan/NVENC fail)",
            flag_fix,
        )
    if unknown:
        return Finding(
            "C7",
            "warn",
            f"unknown driver capabilities {','.join(unknown)}",
            "use compute, utility, graphics, video, display, compat32, ngx",
        )
    return Finding(
        "C7", "pass", f"capabilities {','.join(requested)} are within the allowed set {','.join(allowed)}"
    )


def _c8(v: _View) -> Finding:
    rootfs_type = str(v.annotations.get(c.ROOTFS_TYPE_ANNOTATION, "")).lower()
    if rootfs_type and rootfs_type != "lisafs":
        if v.runs_cli:
            return Finding(
                "C8",
                "fail",
                f"rootfs is {rootfs_type}-backed ({c.ROOTFS_TYPE_ANNOTATION}): runsc "
                "refuses the hook path on a non-lisafs root mount",
                f"drop the {c.ROOTFS_TYPE_ANNOTATION} annotation (use the default gofer rootfs)",
            )
        if c.hooks(v.spec, "createContainer"):
            return Finding(
                "C8",
                "fail",
                f"rootfs is {rootfs_type}-backed: runsc silently skips createContainer "
                "hooks (symlinks, ldcache), so CUDA libraries are not set up",
                f"drop the {c.ROOTFS_TYPE_ANNOTATION} annotation (use the default gofer rootfs)",
            )
        return Finding(
            "C8",
            "warn",
            f"rootfs is {rootfs_type}-backed; fine without hooks, but the GPU hook "
            "paths need a lisafs rootfs",
            "use the default gofer rootfs for GPU work",
        )
    return Finding("C8", "pass", "rootfs is the default gofer (lisafs) mount")


# ---------------------------------------------------------------- legacy-hook flow


def _l1(v: _View) -> Finding:
    if v.legacy_hooks:
        bad = [h["path"] for h in v.legacy_hooks if not str(h.get("path", "")).startswith("/")]
        if bad:
            return Finding(
                "L1",
                "fail",
                f"legacy hook path {bad[0]} is not absolute",
                "use an absolute path ending in /nvidia-container-runtime-hook",
            )
        return Finding("L1", "pass", f"prestart hook {v.legacy_hooks[0]['path']} is recognised by runsc")
    if c.flag_true(v.flags, "nvproxy-docker"):
        return Finding(
            "L1", "pass", "runsc.toml sets nvproxy-docker (acts as if the legacy hook were present)"
        )
    names = ", ".join(str(h.get("path")) for h in v.alias_hooks)
    return Finding(
        "L1",
        "fail",
        f"legacy hook named {names}: runsc only recognises a path ending in "
        "/nvidia-container-runtime-hook, so it executes this one on the host "
        "instead of replaying it",
        "name the hook <dir>/nvidia-container-runtime-hook with args "
        "[nvidia-container-runtime-hook, prestart]; " + FIX_SANDBOX,
    )


def _l2(v: _View) -> Finding:
    if not v.has_process:
        return Finding(
            "L2",
            "fail",
            "the spec has no process, so runsc never sees a GPU request",
            "add process (with NVIDIA_VISIBLE_DEVICES) to the spec",
        )
    toolkit = c.toolkit_env_lookup(v.env, c.NVD)
    if toolkit is None and c.is_legacy_cuda_image(v.env):
        toolkit = "all"
    runsc = c.runsc_env_lookup(v.env, c.NVD)
    if c.is_request(toolkit) and not c.is_request(runsc):
        why = (
            "a malformed env entry makes runsc read it as unset"
            if c.malformed_env(v.env)
            else "the toolkit implies 'all' for a legacy CUDA image (CUDA_VERSION set), runsc needs it explicit"
        )
        return Finding(
            "L2",
            "fail",
            f"the hook would grant NVIDIA_VISIBLE_DEVICES={toolkit} but runsc sees no request: {why}",
            "set NVIDIA_VISIBLE_DEVICES explicitly and keep env entries NAME=VALUE; " + FIX_SANDBOX,
        )
    if c.is_request(runsc):
        return Finding("L2", "pass", f"NVIDIA_VISIBLE_DEVICES={runsc} (last occurrence) is a GPU request")
    return Finding(
        "L2",
        "pass",
        "no GPU requested (NVIDIA_VISIBLE_DEVICES unset or void): the hook is a no-op and runsc agrees",
    )


_INDEX = re.compile(r"^\d+$")
_MIG_INDEX = re.compile(r"^\d+:\d+$")


def _l3(v: _View) -> Finding:
    value = c.runsc_env_lookup(v.env, c.NVD)
    if not c.is_request(value) or value in ("all", "none"):
        return Finding("L3", "pass", f"NVIDIA_VISIBLE_DEVICES={value or '(unset)'} is a value runsc accepts")
    tokens = [t.strip() for t in str(value).split(",") if t.strip()]
    mig = [t for t in tokens if t.startswith("MIG-") or _MIG_INDEX.match(t)]
    if mig:
        return Finding(
            "L3",
            "fail",
            f"MIG device requested ({', '.join(mig)}): runsc rejects MIG identifiers and create fails",
            "request full GPUs (index or GPU-UUID)",
        )
    bad = [t for t in tokens if not (_INDEX.match(t) or t.startswith("GPU-"))]
    if bad:
        return Finding(
            "L3",
            "fail",
            f"NVIDIA_VISIBLE_DEVICES items {', '.join(bad)} are neither decimal "
            "indices nor GPU- UUIDs: runsc rejects them",
            "use all, none, indices or GPU-UUIDs (CDI names need the CDI flow)",
        )
    return Finding("L3", "pass", f"NVIDIA_VISIBLE_DEVICES={value} lists indices/GPU-UUIDs runsc accepts")


def _l4(v: _View) -> Finding:
    root = c.as_dict(v.spec.get("root")).get("path")
    if isinstance(root, str) and root:
        return Finding("L4", "pass", f"root.path is set ({root}); runsc creates proc/driver/nvidia in it")
    return Finding(
        "L4",
        "fail",
        "root.path is not set: runsc cannot create proc/driver/nvidia nor let "
        "nvidia-container-cli mount the driver into the rootfs",
        "set root.path",
    )


def _l5() -> Finding:
    return Finding(
        "L5",
        "warn",
        "host-side, not visible in the spec: runsc runs nvidia-container-cli from its "
        "own PATH, /sbin/modprobe and /sbin/ldconfig(.real)",
        "on the host: `command -v nvidia-container-cli` in runsc's environment and "
        "`ls /sbin/modprobe /sbin/ldconfig*`",
    )


def _l6(v: _View) -> Finding:
    ignored = []
    for h in v.legacy_hooks:
        args = [a for a in c.as_list(h.get("args")) if isinstance(a, str)]
        if args[1:] != ["prestart"]:
            ignored.append(f"hook args {args[1:]}")
        if h.get("env"):
            ignored.append("hook env")
    names = [e.split("=", 1)[0] for e in v.env if isinstance(e, str) and "=" in e]
    for prefix in (
        "NVIDIA_MIG_CONFIG_DEVICES",
        "NVIDIA_MIG_MONITOR_DEVICES",
        "NVIDIA_IMEX_CHANNELS",
        "NVIDIA_REQUIRE_",
    ):
        hits = sorted({n for n in names if n.startswith(prefix)} - {"NVIDIA_REQUIRE_JETPACK"})
        ignored.extend(hits)
    if ignored:
        return Finding(
            "L6",
            "warn",
            f"runsc replays the hook itself and ignores {', '.join(ignored)} "
            "(and config.toml: ldconfig, root, user)",
            "do not rely on these under runsc (no requirement checks, no MIG/IMEX setup)",
        )
    return Finding("L6", "pass", "plain prestart hook; nothing runsc's replay would ignore")


def _l7() -> Finding:
    return Finding(
        "L7",
        "pass",
        "legacy flow: linux.devices need not list GPUs; runsc synthesises "
        "/dev/nvidia* from what nvidia-container-cli creates",
    )


def _l8(v: _View) -> Finding:
    binary = (v.runsc_toml or {}).get("binary_name")
    if binary:
        return Finding(
            "L8",
            "pass",
            f"runsc.toml binary_name = {binary}: containerd's runsc shim runs the GPU "
            "runtime, which edits the spec before runsc",
        )
    return Finding(
        "L8",
        "warn",
        "runsc.toml has no binary_name: the spec reaches runsc unedited by a GPU runtime",
        'set binary_name = "/usr/local/bin/gpuctk-runtime" (see docs/gvisor.md)',
    )


# ---------------------------------------------------------------- CDI flow


def _d1(v: _View) -> Finding:
    ctl = [d for d in v.devices if d.get("path") == "/dev/nvidiactl"]
    if not ctl:
        return Finding(
            "D1",
            "fail",
            "no /dev/nvidiactl in linux.devices: on the CDI path it is runsc's only GPU signal",
            "inject the CDI device's control nodes (/dev/nvidiactl, "
            "/dev/nvidia-uvm) — gpuctk's generated specs carry them",
        )
    d = ctl[0]
    if d.get("type") != "c" or d.get("major") != 195 or d.get("minor") != 255:
        return Finding(
            "D1",
            "fail",
            f"/dev/nvidiactl is {d.get('type')} {d.get('major')}:{d.get('minor')}, not c 195:255",
            "use the host node's numbers (c 195:255)",
        )
    paths = [str(x.get("path")) for x in v.devices]
    gpus = [p for p in paths if c.is_backed_by_nvproxy(p) and p not in ("/dev/nvidiactl", "/dev/nvidia-uvm")]
    missing = [] if "/dev/nvidia-uvm" in paths else ["/dev/nvidia-uvm (CUDA needs it)"]
    if not gpus and c.toolkit_env_lookup(v.env, c.NVD) != "none":
        missing.append("a /dev/nvidiaN")
    if missing:
        return Finding(
            "D1",
            "warn",
            f"/dev/nvidiactl is present but {' and '.join(missing)} missing",
            "inject the GPU device (it brings /dev/nvidiaN) and the common edits",
        )
    return Finding("D1", "pass", f"/dev/nvidiactl (c 195:255), /dev/nvidia-uvm and {', '.join(gpus)}")


def _d2(v: _View) -> Finding:
    values = c.env_values(v.env, c.NVD)
    if v.runs_cli:
        trigger = "an nvidia-cdi-hook createContainer hook" if v.hook_kind == "cdi" else "the legacy hook"
        return Finding(
            "D2",
            "fail",
            f"isolation leak: {trigger} plus effective NVIDIA_VISIBLE_DEVICES="
            f"{v.effective} (entries: {', '.join(values)}) make runsc also run "
            f"`nvidia-container-cli configure --device={v.effective}`, exposing "
            "every GPU it names, not only the CDI-granted ones",
            FIX_VOID,
        )
    if not v.cdi_hooks:
        return Finding("D2", "pass", "no hook path ends in /nvidia-cdi-hook: runsc stays purely CDI")
    return Finding(
        "D2",
        "pass",
        f"effective NVIDIA_VISIBLE_DEVICES is {v.effective or 'absent'}: runsc stays "
        "purely CDI (no nvidia-container-cli)",
    )


def _d3(v: _View) -> Finding:
    cc = c.hooks(v.spec, "createContainer")
    bad = [str(h.get("path")) for h in cc if not str(h.get("path", "")).startswith("/")]
    if bad:
        return Finding(
            "D3",
            "fail",
            f"createContainer hook path {bad[0]!r} is not absolute: runsc rejects it",
            "use absolute hook paths",
        )
    unverified = []
    for h in cc:
        parsed = c.toolkit_hook_name(h)
        if parsed is None:
            unverified.append(c.basename(h.get("path")))
        elif parsed[0] not in (*c.HOOKS_VERIFIED_IN_GOFER, c.DISABLE_NODE_MOD):
            unverified.append(parsed[0])
    skipped = c.hooks(v.spec, "startContainer")
    notes = []
    if unverified:
        notes.append(
            f"createContainer hooks not verified under runsc: {', '.join(unverified)} (they run in "
            "the gofer with pid -1 and only their own env)"
        )
    if skipped:
        notes.append(f"{len(skipped)} startContainer hook(s) are skipped by runsc")
    if notes:
        return Finding(
            "D3",
            "warn",
            "; ".join(notes),
            "check these hooks need neither the container PID nor namespaces; drop startContainer hooks",
        )
    return Finding(
        "D3", "pass", f"{len(cc)} createContainer hook(s), all of kinds known to work in the gofer"
    )


def _d4(v: _View) -> Finding:
    for h in c.hooks(v.spec, "createContainer"):
        parsed = c.toolkit_hook_name(h)
        if parsed and parsed[0] == c.DISABLE_NODE_MOD and not c.is_runsc_cdi_hook(h):
            return Finding(
                "D4",
                "fail",
                f"{c.DISABLE_NODE_MOD} runs through {h.get('path')}: runsc only skips it "
                "for a path ending in /nvidia-cdi-hook; otherwise it is fatal "
                "(proc/driver/nvidia/params is absent at hook time, gvisor#13283)",
                f"reference the hook through nvidia-cdi-hook or omit it (nvproxy already forces "
                f"ModifyDeviceFiles: 0); {FIX_SANDBOX}",
            )
        if parsed and parsed[0] == c.DISABLE_NODE_MOD:
            return Finding(
                "D4",
                "pass",
                f"{c.DISABLE_NODE_MOD} comes from nvidia-cdi-hook, which runsc skips "
                "(runsc older than commit 8f3bcd05c runs it and fails; sandbox mode "
                "omits it)",
            )
    return Finding("D4", "pass", f"no {c.DISABLE_NODE_MOD} hook")


def _d5(v: _View) -> Finding:
    mounts = [m for m in c.as_list(v.spec.get("mounts")) if isinstance(m, dict)]
    if c.mounts_libcuda(mounts):
        return Finding("D5", "pass", "driver libraries are bind-mounted (libcuda found)")
    return Finding(
        "D5",
        "warn",
        "no libcuda bind mount: nvproxy proxies ioctls but does not inject user-mode "
        "libraries, so CUDA sees no GPU unless the image brings the driver (gvisor#13060)",
        "inject the CDI spec's common edits (driver libraries)",
    )


def _d6(v: _View) -> Finding:
    raw = c.toolkit_env_lookup(v.env, c.NVCAPS)
    caps = c.split_caps(raw) if raw else []
    if caps and "all" not in caps:
        return Finding(
            "D6",
            "warn",
            f"NVIDIA_DRIVER_CAPABILITIES={raw} does not restrict what the CDI spec "
            "mounts; it only bounds the sandbox's ioctl allow-list (C7)",
            "restrict the CDI spec itself if fewer driver files should be visible",
        )
    return Finding(
        "D6", "pass", "NVIDIA_DRIVER_CAPABILITIES does not narrow the CDI edits (nothing to reconcile)"
    )


def _is_k8s(v: _View) -> bool:
    return any(k in v.annotations for k in c.K8S_CONTAINER_TYPE_ANNOTATIONS)


def _d7(v: _View) -> Finding:
    if not _is_k8s(v):
        return Finding("D7", "pass", "not a Kubernetes pod container (no CRI container-type annotation)")
    if c.flag_true(v.flags, "nvproxy"):
        return Finding(
            "D7", "pass", "Kubernetes pod and runsc.toml sets nvproxy = true (pause container included)"
        )
    if v.runsc_toml is not None:
        return Finding(
            "D7",
            "fail",
            "Kubernetes pod but runsc.toml does not set nvproxy = true: the pause "
            "container (no GPU markers) decides the seccomp ioctl allow-list, so GPU "
            "ioctls are refused",
            'set nvproxy = "true" under [runsc_config] in runsc.toml',
        )
    return Finding(
        "D7",
        "warn",
        "Kubernetes pod: the pause container has no GPU markers but decides the "
        "seccomp ioctl allow-list and driver plumbing",
        'set nvproxy = "true" under [runsc_config] in runsc.toml (pass --runsc-config to verify)',
    )


# ---------------------------------------------------------------- CSV flow


def _s2(v: _View) -> Finding:
    if v.has_ctl:
        return Finding("S2", "pass", "the CSV device list includes /dev/nvidiactl")
    return Finding(
        "S2",
        "fail",
        "no /dev/nvidiactl: runsc sees no GPU (or registers nvproxy with nothing usable)",
        "add `dev, /dev/nvidiactl` to the CSV files (devices.csv)",
    )


def _s3(v: _View) -> Finding:
    tegra = [p for p in v.gpu_devices if c.is_tegra_node(p)]
    gpus = [
        p
        for p in v.gpu_devices
        if c.is_backed_by_nvproxy(p) and p not in ("/dev/nvidiactl", "/dev/nvidia-uvm")
    ]
    if tegra and not gpus:
        return Finding(
            "S3",
            "fail",
            f"the GPU is nvgpu-only ({', '.join(tegra[:6])}): nvproxy proxies only "
            "OpenRM nodes, so the sandbox gets no usable GPU",
            "run this workload with runc; gVisor serves OpenRM GPUs (nvidiactl, nvidiaN) only",
        )
    if tegra:
        return Finding(
            "S3",
            "warn",
            f"nvgpu/Tegra nodes are not proxied by nvproxy: {', '.join(tegra[:6])}"
            + (" …" if len(tegra) > 6 else ""),
            "only OpenRM nodes (nvidiactl, nvidiaN, nvidia-uvm) work; sandbox mode drops the rest",
        )
    return Finding("S3", "pass", "no nvgpu/Tegra-only device nodes")


def _s4(v: _View) -> Finding:
    if v.runs_cli:
        return Finding(
            "S4",
            "fail",
            f"effective NVIDIA_VISIBLE_DEVICES={v.effective} with nvidia-cdi-hook makes "
            "runsc run nvidia-container-cli, which fails on NVML-less CSV hosts",
            FIX_VOID,
        )
    return Finding("S4", "pass", "runsc will not run nvidia-container-cli for this CSV spec")
