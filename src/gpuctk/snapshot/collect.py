"""Collect node facts into one document: GPUs, OS, engine + CDI, CDI specs, /dev/char, k8s.

Every collector takes its roots, paths and commands as arguments so tests run them on
fixtures (a fake ``nvidia-smi`` script, a temp host root). A collector never raises for
a missing piece of the node: it records what it could not find, and ``gpuctk doctor``
turns that into a pass/warn/fail line.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from gpuctk import __version__
from gpuctk.snapshot.cdispecs import DEFAULT_SPEC_DIRS, check_specs

SNAPSHOT_KIND = "GpuctkSnapshot"
NVIDIA_DEVICE_PREFIXES = ("nvidia",)


@dataclass
class SnapshotOptions:
    host_root: str = "/"
    nvidia_smi: str | None = None  # path; None = look on PATH
    nvidia_smi_timeout: float = 10.0
    runtime: str | None = None  # engine to inspect; None = every engine whose config/binary is present
    engine_version: str | None = None  # e.g. from node.status.nodeInfo.containerRuntimeVersion
    engine_run: Any = None  # command runner for gpuctk.engines.detect (tests)
    spec_dirs: list[str] = field(default_factory=lambda: list(DEFAULT_SPEC_DIRS))
    kubernetes: bool | None = None  # None = when running in a cluster
    kube_api: Any = None  # a gpuctk.k8s.client.KubeAPI (tests)
    node_name: str | None = None
    status_file: str | None = None  # the decision record; None = its default path under host_root


def _under(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def collect_gpus(nvidia_smi: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """``nvidia-smi -q -x`` parsed; ``available: False`` with the reason when it fails."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return {"available": False, "count": 0, "error": "nvidia-smi not found on PATH"}
    try:
        proc = subprocess.run(
            [exe, "-q", "-x"], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "count": 0, "nvidia_smi": exe, "error": f"cannot run {exe}: {exc}"}
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        return {
            "available": False,
            "count": 0,
            "nvidia_smi": exe,
            "error": f"{exe} -q -x exited {proc.returncode}: {msg[0] if msg else ''}",
        }
    from gpuctk.discover.nvsmi import parse_nvidia_smi_xml
    from gpuctk.errors import GpuctkError

    try:
        parsed = parse_nvidia_smi_xml(proc.stdout)
    except GpuctkError as exc:
        return {"available": False, "count": 0, "nvidia_smi": exe, "error": str(exc)}
    gpus = parsed.get("gpus") or []
    return {
        "available": True,
        "nvidia_smi": exe,
        "driver_version": parsed.get("driver_version"),
        "cuda_version": parsed.get("cuda_version"),
        "count": len(gpus),
        "gpus": gpus,
    }


def collect_os(root: str = "/") -> dict[str, Any]:
    info: dict[str, Any] = {"kernel": platform.release(), "arch": platform.machine()}
    try:
        with open(_under(root, "/etc/os-release")) as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key in ("ID", "VERSION_ID", "PRETTY_NAME", "ID_LIKE"):
                    info[key.lower()] = value.strip().strip('"')
    except OSError as exc:
        info["error"] = f"/etc/os-release: {exc.strerror}"
    return info


def collect_engines(opts: SnapshotOptions) -> list[dict[str, Any]]:
    """``gpuctk.engines.detect`` for each engine present under the host root."""
    from gpuctk.engines.detect import BINARIES, detect
    from gpuctk.engines.model import DEFAULT_CONFIG, ENGINES
    from gpuctk.errors import GpuctkError

    root = opts.host_root
    engines = (
        [opts.runtime]
        if opts.runtime
        else [
            e
            for e in ENGINES
            if os.path.exists(_under(root, DEFAULT_CONFIG[e]))
            or (root in ("", "/") and shutil.which(BINARIES[e]))
        ]
    )
    out = []
    for engine in engines:
        kw: dict[str, Any] = {"config": _under(root, DEFAULT_CONFIG[engine])}
        if root not in ("", "/"):
            kw["dump"] = False  # the binary in this container is not the host's
        if opts.engine_version:
            kw["version"] = opts.engine_version
        if opts.engine_run is not None:
            kw["run"] = opts.engine_run
        try:
            out.append(detect(engine, **kw))
        except GpuctkError as exc:
            out.append({"engine": engine, "error": str(exc)})
    return out


def collect_decision(opts: SnapshotOptions) -> dict[str, Any] | None:
    """The decision record ``--cdi auto`` left on the node (gpuctk.engines.status), or None."""
    from gpuctk.engines import status
    from gpuctk.errors import GpuctkError

    path = opts.status_file or status.status_file(opts.host_root)
    try:
        record = status.read(path)
    except GpuctkError as exc:
        return {"path": path, "error": str(exc)}
    return None if record is None else {"path": path, **record}


def collect_dev_char(root: str = "/") -> dict[str, Any]:
    """NVIDIA device nodes lacking their ``/dev/char/MAJOR:MINOR`` link (systemd needs them
    to keep device access after a daemon-reload)."""
    dev = _under(root, "/dev")
    nodes: list[str] = []
    try:
        names = sorted(os.listdir(dev))
    except OSError:
        names = []
    for name in names:
        if name.startswith(NVIDIA_DEVICE_PREFIXES):
            nodes.append(os.path.join("/dev", name))
    caps = os.path.join(dev, "nvidia-caps")
    if os.path.isdir(caps):
        nodes += [os.path.join("/dev/nvidia-caps", n) for n in sorted(os.listdir(caps))]
    checked, missing = 0, []
    for path in nodes:
        try:
            st = os.stat(_under(root, path))
        except OSError:
            continue
        if not stat.S_ISCHR(st.st_mode):
            continue
        checked += 1
        link = f"/dev/char/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        if not os.path.lexists(_under(root, link)):
            missing.append({"device": path, "link": link})
    return {"checked": checked, "missing": missing}


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) or os.environ.get("GPUCTK_AGENT_MODE") == "true"


def collect_kubernetes(api: Any, node_name: str | None) -> dict[str, Any]:
    from gpuctk.errors import GpuctkError
    from gpuctk.k8s.client import collect_cluster_objects
    from gpuctk.k8s.facts import node_facts

    out: dict[str, Any] = {"node_name": node_name}
    try:
        cluster = collect_cluster_objects(api)
    except GpuctkError as exc:
        out["error"] = str(exc)
        return out
    out["cluster"] = cluster
    for n in cluster["nodes"]:
        if node_name and n["metadata"].get("name") == node_name:
            out["node"] = node_facts(n)
    return out


def collect_snapshot(opts: SnapshotOptions | None = None) -> dict[str, Any]:
    opts = opts or SnapshotOptions()
    node_name = opts.node_name or os.environ.get("NODE_NAME") or socket.gethostname()
    doc: dict[str, Any] = {
        "kind": SNAPSHOT_KIND,
        "version": 1,
        "gpuctk_version": __version__,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "node": node_name,
        "host_root": opts.host_root,
    }
    want_k8s = opts.kubernetes if opts.kubernetes is not None else (opts.kube_api is not None or in_cluster())
    k8s: dict[str, Any] | None = None
    if want_k8s:
        api = opts.kube_api
        if api is None:
            from gpuctk.errors import GpuctkError
            from gpuctk.k8s.client import connect

            try:
                api = connect()
            except GpuctkError as exc:
                k8s = {"node_name": node_name, "error": str(exc)}
        if api is not None:
            k8s = collect_kubernetes(api, node_name)
        if k8s and k8s.get("node") and not opts.engine_version:
            opts.engine_version = k8s["node"].get("runtime_version") or None
    gpu = collect_gpus(opts.nvidia_smi, opts.nvidia_smi_timeout)
    doc["gpu"] = gpu
    doc["os"] = collect_os(opts.host_root)
    doc["engines"] = collect_engines(opts)
    doc["cdi_decision"] = collect_decision(opts)
    doc["cdi"] = {
        "spec_dirs": list(opts.spec_dirs),
        "specs": check_specs(opts.host_root, opts.spec_dirs, gpu.get("driver_version")),
    }
    doc["dev_char"] = collect_dev_char(opts.host_root)
    doc["kubernetes"] = k8s
    return doc
