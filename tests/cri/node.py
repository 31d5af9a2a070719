"""A Kubernetes node's container half, for CRI tests: a private containerd 1.6 with its
CRI plugin, the ``nvidia`` runtime handler from ``gpuctk runtime configure``, and a
simulated GPU node with CDI specs.

The shim (``gpuctk-runtime``) reads its config from ``$NVIDIA_CTK_CONFIG_FILE_PATH``.
containerd passes its own environment to every shim it starts, and the shim to the OCI
runtime binary, so the variable is set in containerd's environment (as a systemd
``Environment=`` line would on a real node) and points at ONE file per containerd that a
scenario rewrites before it runs its pod: the shim reads the file on every ``create``,
so no containerd restart is needed between scenarios.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import tomlkit

from support.containers import Containerd, containerd_base_config, private_containerd
from support.tools import require_tool, venv_script

from .client import CRIClient
from .images import import_cri_images

CRI = "io.containerd.grpc.v1.cri"
HANDLER = "nvidia"


def _cri_table(doc: Any) -> Any:
    return doc["plugins"][CRI]


# ---------------------------------------------------------------- containerd config
def base_config(base: str) -> str:
    """The shared base config made fit for CRI pods on this machine.

    - CNI: host-network pods need no plugin; point the CRI plugin at empty dirs so it never
      reads the host's /etc/cni (podman's bridge config lives there).
    - ``restrict_oom_score_adj``: the sandbox gets oom_score_adj -998, which needs
      CAP_SYS_RESOURCE; without it runc init dies with "can't get final child's PID".
    - runc ``Root``: runc state under ``base``, not the host's /run/containerd/runc.
    """
    doc = tomlkit.parse(containerd_base_config(base))
    cri = _cri_table(doc)
    for d in ("cni/bin", "cni/net.d"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    cni = tomlkit.table()
    cni["bin_dir"] = os.path.join(base, "cni/bin")
    cni["conf_dir"] = os.path.join(base, "cni/net.d")
    cri["cni"] = cni
    cri["restrict_oom_score_adj"] = True
    cri["containerd"]["runtimes"]["runc"]["options"]["Root"] = os.path.join(base, "runc")
    return tomlkit.dumps(doc)


def configure_nvidia_runtime(config_path: str, runtime_path: str, *, uninstall: bool = False) -> None:
    """``gpuctk runtime configure --runtime containerd`` (or ``--uninstall``) on ``config_path``,
    with its drop-in beside it (``conf.d/99-nvidia.toml`` + an ``imports`` entry), as on a node."""
    drop_in = os.path.join(os.path.dirname(config_path), "conf.d", "99-nvidia.toml")
    cmd = [
        venv_script("gpuctk"),
        "runtime",
        "configure",
        "--runtime",
        "containerd",
        "--config",
        config_path,
        "--drop-in-config",
        drop_in,
        "--nvidia-runtime-name",
        HANDLER,
        "--nvidia-runtime-path",
        runtime_path,
    ]
    for prefix in CDI_ANNOTATION_PREFIXES:
        cmd += ["--cdi-annotation-prefix", prefix]
    if uninstall:
        cmd.append("--uninstall")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")


# containerd's CRI plugin copies a container's CRI annotations into its OCI spec only when
# they match the runtime's ``container_annotations`` globs; without them the nvidia runtime
# never sees the device plugin's ``nvidia.cdi.k8s.io/…`` annotations (scenario 3), so
# configure is asked for them with --cdi-annotation-prefix, as the upstream installer does.
CDI_ANNOTATION_PREFIXES = ("nvidia.cdi.k8s.io/",)


def effective_cri_config(config_path: str) -> dict[str, Any]:
    """The CRI plugin's config as containerd will load it (``containerd config dump`` merges imports)."""
    p = subprocess.run(
        [require_tool("containerd"), "--config", config_path, "config", "dump"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode != 0:
        raise AssertionError(f"containerd config dump failed: {p.stderr}")
    return dict(tomllib.loads(p.stdout)["plugins"][CRI])


def effective_runtimes(config_path: str) -> dict[str, Any]:
    """The CRI runtime handlers containerd will load."""
    return dict(effective_cri_config(config_path)["containerd"]["runtimes"])


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------- simulated GPU node
SIM_PROFILE = "dgx-h100"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
DEVICE_PLUGIN_KIND = "k8s.device-plugin.nvidia.com/gpu"


@dataclass
class GpuNode:
    """What the tests need to know about the simulated node."""

    root: str
    driver_root: str
    dev_root: str
    cdi_dir: str
    gpus: list[dict[str, Any]]  # index, uuid, minor
    # container paths every GPU injection must bring in: the driver's libraries (mounts) and
    # their SONAME links (made by the create-symlinks hook)
    libraries: list[str]
    nvidia_smi: str | None  # container path of the simulated nvidia-smi

    def gpu_nodes(self, gpus: list[dict[str, Any]] | None = None) -> set[str]:
        return {f"nvidia{g['minor']}" for g in (self.gpus if gpus is None else gpus)}


def _cdi_generate(sim: Any, output: str, *extra: str) -> None:
    cmd = [
        venv_script("gpuctk"),
        "cdi",
        "generate",
        "--driver-root",
        sim.driver_root,
        "--dev-root",
        sim.dev_root,
        "--inventory",
        sim.inventory_path,
        "--format",
        "json",
        "--output",
        output,
        *extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")


def provision_gpu_node(root: str) -> GpuNode:
    """A simulated DGX H100 (``gpuctk.sim.create_node``) and its CDI specs from
    ``gpuctk cdi generate`` in a private dir: ``nvidia.com/gpu`` (cdi mode's default kind;
    names by index and UUID) and ``k8s.device-plugin.nvidia.com/gpu`` (the device plugin's
    own kind, names by UUID, as the plugin generates it)."""
    from gpuctk.sim import create_node

    sim = create_node(SIM_PROFILE, os.path.join(root, "sim"))
    version = sim.driver_version
    node = GpuNode(
        root=root,
        driver_root=sim.driver_root,
        dev_root=sim.dev_root,
        cdi_dir=os.path.join(root, "cdi"),
        gpus=[{"index": g["index"], "uuid": g["uuid"], "minor": g["minor"]} for g in sim.gpus],
        libraries=[
            f"{LIBDIR}/{lib}.so{suffix}"
            for lib in ("libcuda", "libnvidia-ml")
            for suffix in (f".{version}", ".1")
        ],
        nvidia_smi="/usr/bin/nvidia-smi" if sim.nvidia_smi else None,
    )
    os.makedirs(node.cdi_dir, exist_ok=True)
    _cdi_generate(sim, os.path.join(node.cdi_dir, "nvidia.json"))
    vendor, cls = DEVICE_PLUGIN_KIND.split("/")
    _cdi_generate(
        sim,
        os.path.join(node.cdi_dir, "k8s-device-plugin.json"),
        "--vendor",
        vendor,
        "--class",
        cls,
        "--device-name-strategy",
        "uuid",
    )
    return node


# ---------------------------------------------------------------- toolkit config
def toolkit_config_text(node: GpuNode, log_path: str, overrides: dict[str, Any] | None = None) -> str:
    """The shim's config.toml for ``node``: CDI specs only from the node's dir (never
    /etc/cdi), the simulated driver root, a debug log; ``overrides`` are merged per table.

    The mode stays the default (``auto``, which resolves to ``jit-cdi``: a spec generated per
    container from the driver root), as on a containerd 1.6 node; scenario 3 switches to
    ``cdi`` mode, which reads the generated static specs."""
    cfg: dict[str, Any] = {
        "nvidia-container-cli": {"root": node.driver_root},
        "nvidia-container-runtime": {
            "debug": log_path,
            "log-level": "debug",
            "modes": {"cdi": {"spec-dirs": [node.cdi_dir]}},
        },
    }

    return tomlkit.dumps(merge(cfg, overrides or {}))


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated with ``b``, nested tables merged key by key (neither is modified)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------- the node
@dataclass
class CRINode:
    base: str
    containerd: Containerd
    client: CRIClient
    gpu: GpuNode
    toolkit_config: str
    runtime_log: str
    nvidia_configured: bool
    # the shim settings `gpuctk install --cdi auto` wrote (mode, annotation prefixes), kept
    # under every scenario's overrides; {} for the nodes configured by `runtime configure`
    installed: dict[str, Any] = field(default_factory=dict)
    status_file: str = ""

    @property
    def log_root(self) -> str:
        return os.path.join(self.base, "pods")

    def set_toolkit_config(self, overrides: dict[str, Any] | None = None) -> str:
        """Write the shim's config: the node's base plus ``overrides`` (read on the next create)."""
        text = toolkit_config_text(self.gpu, self.runtime_log, merge(self.installed, overrides or {}))
        with open(self.toolkit_config, "w") as f:
            f.write(text)
        return text

    def diagnostics(self) -> str:
        """containerd's log tail and what gpuctk-runtime said (argv/low-level lines dropped)."""
        parts = ["\n--- containerd log (tail):", self.containerd.log()[-3000:]]
        with contextlib.suppress(OSError), open(self.runtime_log, errors="replace") as f:
            lines = [x for x in f if "Command line arguments" not in x and "Using low-level runtime" not in x]
            parts += ["--- gpuctk-runtime log (tail):", "".join(lines[-25:])]
        return "\n".join(parts)


def runtime_environment() -> dict[str, str]:
    """What containerd (and so every shim and gpuctk-runtime) runs with: the venv's bin dir
    first on PATH, so the runtime finds gpuctk's hooks the way an installed toolkit would."""
    venv_bin = os.path.dirname(venv_script("gpuctk-runtime"))
    path = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": f"{venv_bin}:{path}", "PYTHONDONTWRITEBYTECODE": "1"}


@contextlib.contextmanager
def cri_node(base: str, gpu: GpuNode, *, with_nvidia: bool = True, auto: bool = False) -> Iterator[CRINode]:
    """A running private containerd with the CRI images imported.

    ``with_nvidia=False`` starts it from the configured config with the ``nvidia`` runtime
    removed again by ``gpuctk runtime configure --uninstall`` (the acceptance test's node).
    ``auto=True`` configures it with ``gpuctk install --cdi auto`` instead (launchers, the
    shim's config.toml, containerd's config and the decision record, all under ``base``).
    """
    os.makedirs(base, exist_ok=True)
    try:
        toolkit_config = os.path.join(base, "toolkit", "config.toml")
        os.makedirs(os.path.dirname(toolkit_config), exist_ok=True)
        installed: dict[str, Any] = {}
        status_file = ""
        if auto:
            config_text, installed, status_file = _auto_node_config(base, toolkit_config)
        else:
            config_text = _node_config(base, with_nvidia)
        runtime_log = os.path.join(base, "toolkit", "runtime.log")
        env = runtime_environment() | {"NVIDIA_CTK_CONFIG_FILE_PATH": toolkit_config}
        with contextlib.ExitStack() as stack:
            with _environ(env):  # containerd is spawned inside; it keeps this environment
                cd = stack.enter_context(private_containerd(base, config_text))
            import_cri_images(cd)
            client = stack.enter_context(CRIClient(cd.socket))
            node = CRINode(
                base, cd, client, gpu, toolkit_config, runtime_log, with_nvidia, installed, status_file
            )
            node.set_toolkit_config()
            yield node
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _node_config(base: str, with_nvidia: bool) -> str:
    """containerd's config for the node: the base config run through ``gpuctk runtime
    configure`` (and ``--uninstall`` again for the node without the handler)."""
    runtime = venv_script("gpuctk-runtime")
    config_path = os.path.join(base, "config.toml")
    with open(config_path, "w") as f:
        f.write(base_config(base))
    configure_nvidia_runtime(config_path, runtime)
    handler = effective_runtimes(config_path).get(HANDLER)
    if handler is None or handler.get("options", {}).get("BinaryName") != runtime:
        raise AssertionError(
            f"gpuctk runtime configure did not add runtime {HANDLER!r} with BinaryName {runtime}"
        )
    wanted = [p + "*" for p in CDI_ANNOTATION_PREFIXES]
    if not set(wanted) <= set(handler.get("container_annotations") or []):
        raise AssertionError(
            f"gpuctk runtime configure did not set container_annotations {wanted} on {HANDLER!r}"
        )
    if not with_nvidia:
        configure_nvidia_runtime(config_path, runtime, uninstall=True)
        if HANDLER in effective_runtimes(config_path):
            raise AssertionError(f"runtime {HANDLER!r} still configured after --uninstall")
    with open(config_path) as f:
        return f.read()


def _auto_node_config(base: str, toolkit_config: str) -> tuple[str, dict[str, Any], str]:
    """``gpuctk install --cdi auto`` on the base config: containerd 1.6 gets the nvidia
    launcher as its default runtime with container_annotations, and the shim's config.toml
    cdi mode with the nvidia.cdi.k8s.io/ prefix. Returns containerd's config text, the shim
    settings install wrote (re-applied under the node's test settings) and the record path."""
    config_path = os.path.join(base, "config.toml")
    with open(config_path, "w") as f:
        f.write(base_config(base))
    status_file = os.path.join(base, "decision.json")
    cmd = [
        venv_script("gpuctk"),
        "install",
        "--toolkit-dir",
        os.path.join(base, "tk"),
        "--root",
        base,
        "--config-file",
        toolkit_config,
        "--runtime",
        "containerd",
        "--engine-config",
        config_path,
        "--drop-in-config",
        os.path.join(base, "conf.d", "99-nvidia.toml"),
        "--cdi",
        "auto",
        "--status-file",
        status_file,
        "--no-cdi-spec",
        "--no-units",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    with open(toolkit_config, "rb") as f:
        shim = tomllib.load(f)["nvidia-container-runtime"]
    installed = {
        "nvidia-container-runtime": {
            "mode": shim["mode"],
            "modes": {"cdi": {"annotation-prefixes": shim["modes"]["cdi"]["annotation-prefixes"]}},
        }
    }
    with open(config_path) as f:
        return f.read(), installed, status_file


def short_base(tag: str) -> str:
    """A containerd base dir whose socket path stays well under the 108-byte limit."""
    return f"/tmp/gpuctk-cri-{os.getpid()}-{tag}"


__all__ = ["HANDLER", "CRINode", "GpuNode", "cri_node", "provision_gpu_node", "short_base"]
