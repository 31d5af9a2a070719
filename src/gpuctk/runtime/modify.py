"""What the shim does to a ``create``: read the requests, resolve the mode, edit the spec.

``modify_spec`` edits a raw OCI spec dict in place and says whether it changed anything; the
caller writes the file only then, so a container that asks for no GPU keeps its
``config.json`` byte for byte. Modifier stacks per mode follow upstream's
(NVIDIA/nvidia-container-toolkit `internal/modifier/mode.go`, `internal/runtime/runtime_factory.go`):

- ``cdi``/``jit-cdi``: NVIDIA hook remover, then CDI injection (registry or JIT);
- ``csv``: hook remover, feature-gated devices, CSV devices (through the JIT generator);
- ``legacy``: feature-gated devices, graphics (DRM nodes), the prestart hook.
"""

from __future__ import annotations

from gpuctk.oci.spec import add_prestart_hook, give_hooks_an_env, remove_nvidia_hooks
from gpuctk.request import ContainerRequest, is_qualified_cdi_name
from gpuctk.runtime.host import AUTOMATIC_KIND, Host, ModifyError
from gpuctk.runtime.log import Logger

TYPE_CHECKING = False  # no `typing` at run time: the shim's create path imports this module
if TYPE_CHECKING:
    from gpuctk.config.types import ConfigDict

# env var -> generator mode of the feature-gated devices (legacy, csv, jit-cdi)
GATED_MODES = (
    ("NVIDIA_GDS", "gds"),
    ("NVIDIA_MOFED", "mofed"),
    ("NVIDIA_GDRCOPY", "gdrcopy"),
    ("NVIDIA_NVSWITCH", "nvswitch"),
)
MIXED_VENDOR_ERROR = (
    "requesting a CDI device with vendor 'runtime.nvidia.com' is not supported when "
    "requesting other CDI devices"
)


def cdi_device_names(devices: list[str], default_kind: str) -> list[str]:
    """Qualify bare names with the default kind, drop duplicates, keep order."""
    out: list[str] = []
    for d in devices:
        name = d or "none"
        if not is_qualified_cdi_name(name):
            name = f"{default_kind}={name}"
        if name not in out:
            out.append(name)
    return out


def parse_jit_requests(names: list[str]) -> list[tuple[str, list[str]]]:
    """``runtime.nvidia.com/gpu=<id>`` → (auto, id); ``mode=<m>[,id=<id>]`` → (m, id);
    grouped by mode in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for name in names:
        if name.startswith(AUTOMATIC_KIND + "="):
            mode, ident = "auto", name[len(AUTOMATIC_KIND) + 1 :]
        else:
            fields = dict(f.partition("=")[::2] for f in name.split(","))
            mode, ident = fields.get("mode", ""), fields.get("id", "")
            if not mode:
                raise ModifyError(f"invalid automatic CDI request {name!r}")
        ids = grouped.setdefault(mode, [])
        if ident and ident not in ids:
            ids.append(ident)
    return list(grouped.items())


class Modifier:
    def __init__(self, cfg: ConfigDict, host: Host, log: Logger) -> None:
        self.cfg = cfg
        self.host = host
        self.log = log
        self.rt = cfg["nvidia-container-runtime"]

    # ----------------------------------------------------------------- shared pieces
    def gated_requests(self, image: ContainerRequest) -> list[str]:
        return [f"mode={mode}" for env, mode in GATED_MODES if image.feature_enabled(env)]

    def apply_jit(
        self, spec: dict, requests: list[str], optional: bool = False, csv_all: bool = False
    ) -> None:
        """Generate and apply a spec per mode. ``optional``: a mode the node cannot generate
        (no device nodes for it) is a warning, and the container starts without it.
        ``csv_all``: the image's ``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``."""
        for mode, ids in parse_jit_requests(requests):
            try:
                cdi_spec = self.host.jit_spec(
                    mode, (ids or ["all"]) if mode in ("auto", "csv") else ids, csv_all=csv_all
                )
            except ModifyError as exc:
                if not optional:
                    raise
                self.log.warning(f"{exc}; starting the container without mode={mode}")
                continue
            applied = self.host.apply_cdi_spec(spec, cdi_spec, f"<generated mode={mode}>")
            self.log.info(
                f"Injected generated CDI devices for mode={mode}: {', '.join(applied) or '(common edits)'}"
            )

    def remove_hooks(self, spec: dict) -> None:
        removed = remove_nvidia_hooks(spec)
        if removed:
            self.log.info(f"Removed {removed} NVIDIA prestart hook(s)")

    # ----------------------------------------------------------------- modes
    def cdi(self, spec: dict, image: ContainerRequest, mode: str) -> None:
        self.remove_hooks(spec)
        default_kind = self.rt["modes"]["cdi"]["default-kind"] if mode == "cdi" else AUTOMATIC_KIND
        names = cdi_device_names(image.visible_devices(), default_kind)
        automatic = [n for n in names if n.startswith(AUTOMATIC_KIND + "=")]
        if automatic and len(automatic) != len(names):
            raise ModifyError(MIXED_VENDOR_ERROR)
        if automatic:
            requests = automatic + self.gated_requests(image)
            requests += [f"mode=imex,id={ch}" for ch in image.imex_channels()]
            self.apply_jit(spec, requests, csv_all=image.csv_mounts_all())
            return
        if not names:
            return
        spec_dirs = self.rt["modes"]["cdi"]["spec-dirs"]
        applied = self.host.inject_registry_devices(spec, names, spec_dirs)
        self.log.info(f"Injected CDI devices: {', '.join(applied)}")

    def feature_gated(self, spec: dict, image: ContainerRequest, mode: str) -> None:
        if not image.visible_devices():
            return
        gated = self.gated_requests(image)
        if gated:
            # as upstream's feature-gated modifier (NVIDIA/nvidia-container-toolkit
            # `internal/modifier/gated.go`): a feature whose devices the node lacks is left out
            self.apply_jit(spec, gated, optional=True)
        if self.cfg["features"]["disable-cuda-compat-lib-hook"] or mode == "csv":
            return
        if self.rt["modes"]["legacy"]["cuda-compat-mode"] != "hook":
            return
        version = self.host.driver_version()
        if not version:
            self.log.warning(
                "cuda-compat-mode = hook: host driver version unknown; no enable-cuda-compat hook"
            )
            return
        path = self.host.cdi_hook_path()
        hook = {
            "hookName": "createContainer",
            "path": path,
            "args": self.host.hook_args(path, "enable-cuda-compat", [f"--host-driver-version={version}"]),
            "env": ["NVIDIA_CTK_DEBUG=false"],
        }
        self.host.apply_edits(spec, {"hooks": [hook]})

    def graphics(self, spec: dict, image: ContainerRequest) -> None:
        """DRM nodes (and their /dev/dri/by-path links) for the visible GPUs when graphics/display
        is requested; nvidia-container-cli mounts the graphics libraries itself."""
        visible = image.visible_devices()
        if not visible:
            return
        caps = image.driver_capabilities()
        if "graphics" not in caps and "display" not in caps:
            return
        wanted = set(visible)
        nodes: list[dict] = []
        links: list[str] = []
        for gpu in self.host.gpu_information():
            if "all" not in wanted and not wanted & {
                gpu["minor"],
                gpu["uuid"],
                gpu["bus_id"],
                gpu["bus_id"].lower(),
            }:
                continue
            for node in self.host.drm_nodes(gpu["bus_id"].lower()):
                nodes.append({"path": node})
                kind = "card" if "/card" in node else "render"
                links.append(
                    f"--link=../{node.rsplit('/', 1)[1]}::/dev/dri/by-path/pci-{gpu['bus_id'].lower()}-{kind}"
                )
        if not nodes:
            return
        edits: dict = {"deviceNodes": nodes}
        if links:
            path = self.host.cdi_hook_path()
            edits["hooks"] = [
                {
                    "hookName": "createContainer",
                    "path": path,
                    "args": self.host.hook_args(path, "create-symlinks", links),
                    "env": ["NVIDIA_CTK_DEBUG=false"],
                }
            ]
        self.host.apply_edits(spec, edits)
        self.log.info(f"Added DRM devices for graphics: {', '.join(n['path'] for n in nodes)}")

    def legacy(self, spec: dict, image: ContainerRequest) -> None:
        self.feature_gated(spec, image, "legacy")
        self.graphics(spec, image)
        path = self.host.legacy_hook_path()
        if add_prestart_hook(spec, path):
            self.log.info(f"Added prestart hook {path}")

    def csv(self, spec: dict, image: ContainerRequest) -> None:
        self.remove_hooks(spec)
        self.feature_gated(spec, image, "csv")
        ids = [d for d in image.visible_devices() if d and d != "none"]
        requirements = image.requirements()
        if requirements:
            props = self.host.cuda_properties()
            if props:
                from gpuctk.request.requirements import RequirementError, check_requirements

                try:
                    check_requirements(requirements, props)
                except RequirementError as exc:
                    raise ModifyError(str(exc)) from None
            else:
                self.log.warning("NVIDIA_REQUIRE_* not checked: libcuda.so.1 is not available")
        self.apply_jit(
            spec, [f"mode=csv,id={i}" for i in ids] or ["mode=csv"], csv_all=image.csv_mounts_all()
        )


def _merge_own_hooks(spec: dict, start: int, log: Logger) -> None:
    """The createContainer hooks injected here that run this gpuctk's gpuctk-hook, adjacent ones
    as one process (gpuctk.generate.hooks.merge_injected_hooks; docs/hooks.md "One process")."""
    hooks = spec.get("hooks")
    cc = hooks.get("createContainer") if isinstance(hooks, dict) else None
    if not isinstance(cc, list) or len(cc) - start < 2:
        return
    from gpuctk.generate.hooks import merge_injected_hooks

    merged = merge_injected_hooks(cc[start:])
    if len(merged) < len(cc) - start:
        log.debug(
            f"Merged {len(cc) - start} gpuctk-hook createContainer hooks into {len(merged)} process(es)"
        )
        cc[start:] = merged


def modify_spec(
    spec: dict, cfg: ConfigDict, host: Host, log: Logger, mode_override: str | None = None
) -> str | None:
    """Edit ``spec`` for the GPUs it requests. Returns the mode used, or None when the container
    asks for nothing (the spec is then untouched)."""
    configured = mode_override or cfg["nvidia-container-runtime"]["mode"]
    image = ContainerRequest.from_spec(spec, cfg)
    if configured not in ("auto", "cdi"):
        image = image.without_annotations()
    if not image.visible_devices() and not image.imex_channels():
        log.debug("No GPU requested; passing the spec through unchanged")
        return None
    mode = configured
    if configured == "auto":  # every other mode is used as configured (gpuctk.runtime.platform.resolve_mode)
        from gpuctk.runtime.platform import resolve_mode

        mode = resolve_mode(configured, image, host.probes)
        log.info(f"Auto-detected mode as '{mode}'")
    if mode != "cdi":
        image = image.without_annotations()
        if not image.visible_devices() and not image.imex_channels():
            log.debug("No GPU requested outside annotations; passing the spec through unchanged")
            return None
    for w in image.warnings:
        log.warning(w)
    m = Modifier(cfg, host, log)
    injected_from = len((spec.get("hooks") or {}).get("createContainer") or [])
    if mode in ("cdi", "jit-cdi"):
        m.cdi(spec, image, mode)
    elif mode == "csv":
        m.csv(spec, image)
    elif mode == "legacy":
        m.legacy(spec, image)
    else:
        raise ModifyError(f"invalid runtime mode {mode!r}")
    if cfg["nvidia-container-runtime"]["sandbox"] == "gvisor":
        for note in host.runsc_ready(spec):
            log.info(f"gvisor: {note}")
    else:
        _merge_own_hooks(spec, injected_from, log)
    given = give_hooks_an_env(spec, host.hook_env())
    if given:
        log.debug(f"Gave {given} hook(s) without an environment of their own an explicit one")
    return mode
