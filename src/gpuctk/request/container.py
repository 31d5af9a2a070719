"""What a container asks for: upstream's image view (NVIDIA/nvidia-container-toolkit
`internal/config/image/cuda_image.go`, `devices.go`, `envvars.go`, `privileged.go`, `capabilities.go`).

``ContainerRequest.from_spec(oci_spec, cfg)`` reads ``process.env``, ``mounts``, ``annotations``
and the bounding capabilities of a raw OCI spec dict. Pure and stdlib-only: the runtime shim
and the legacy hook both use it on every container start.
"""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False  # no `typing` at run time: the shim and the legacy hook import this module
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.config.types import ConfigDict

__all__ = [
    "ALL_DRIVER_CAPABILITIES",
    "DEFAULT_DRIVER_CAPABILITIES",
    "DEVICE_LIST_AS_VOLUME_MOUNTS_ROOT",
    "ContainerRequest",
    "is_qualified_cdi_name",
    "parse_major_minor_version",
]

ENV_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
ENV_DRIVER_CAPABILITIES = "NVIDIA_DRIVER_CAPABILITIES"
ENV_IMEX_CHANNELS = "NVIDIA_IMEX_CHANNELS"
ENV_REQUIRE_PREFIX = "NVIDIA_REQUIRE_"
ENV_REQUIRE_JETPACK = "NVIDIA_REQUIRE_JETPACK"
ENV_DISABLE_REQUIRE = "NVIDIA_DISABLE_REQUIRE"
ENV_CUDA_VERSION = "CUDA_VERSION"
ENV_REQUIRE_CUDA = "NVIDIA_REQUIRE_CUDA"
DEVICE_LIST_AS_VOLUME_MOUNTS_ROOT = "/var/run/nvidia-container-devices"

# Upstream's order of the supported capability set (`all` expands to this).
ALL_DRIVER_CAPABILITIES = ("compute", "compat32", "graphics", "utility", "video", "display", "ngx")
DEFAULT_DRIVER_CAPABILITIES = ("utility", "compute")

# vendor: dotted DNS-ish labels; class: alnum with - and _; name: alnum start, then [-_.:]
_QUALIFIED_RE = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?/[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?=[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$"
_TRUE_STRINGS = {"1", "t", "T", "TRUE", "true", "True"}


_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_VENDOR_CHARS = _ALNUM | frozenset("_.-")
_CLASS_CHARS = _ALNUM | frozenset("_-")
_NAME_CHARS = _VENDOR_CHARS | frozenset(":")


def _is_word(s: str, inner: frozenset[str]) -> bool:
    """Non-empty, alphanumeric at both ends, ``inner`` characters in between."""
    return bool(s) and s[0] in _ALNUM and s[-1] in _ALNUM and all(c in inner for c in s)


def is_qualified_cdi_name(name: str) -> bool:
    """``vendor/class=name`` (the CDI fully qualified device name syntax, ``_QUALIFIED_RE``).

    Checked by hand: importing ``re`` costs a container start several milliseconds.
    """
    qualifier, sep, dev = name.partition("=")
    if not sep:
        return False
    vendor, sep, cls = qualifier.partition("/")
    if not sep:
        return False
    return _is_word(vendor, _VENDOR_CHARS) and _is_word(cls, _CLASS_CHARS) and _is_word(dev, _NAME_CHARS)


def parse_major_minor_version(version: str) -> str:
    """``"9.0.116"`` → ``"9.0"``, ``"v11.6"`` → ``"11.6"``, ``"8"`` → ``"8.0"``; ValueError otherwise."""
    v = version[1:] if version.startswith("v") else version
    parts = v.split(".")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"invalid version {version!r}")
    nums = []
    for p in parts:
        if not p.isdigit() or not p.isascii() or int(p) > 0xFFFFFFFF:
            raise ValueError(f"invalid version {version!r}")
        nums.append(int(p))
    return f"{nums[0]}.{nums[1] if len(nums) > 1 else 0}"


def env_dict(env: list[str] | None) -> dict[str, str]:
    """``["K=V", ...]`` → dict; entries without ``=`` are ignored; a later entry wins."""
    out: dict[str, str] = {}
    for item in env or []:
        if not isinstance(item, str):
            continue
        k, sep, v = item.partition("=")
        if sep:
            out[k] = v
    return out


def _split_list(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _is_privileged(oci_spec: dict) -> bool:
    process = oci_spec.get("process")
    caps = process.get("capabilities") if isinstance(process, dict) else None
    if isinstance(caps, list):  # OCI 1.0.0-rc1..rc4: a flat list
        return "CAP_SYS_ADMIN" in caps
    if isinstance(caps, dict):
        bounding = caps.get("bounding")
        return isinstance(bounding, list) and "CAP_SYS_ADMIN" in bounding
    return False


class ContainerRequest:
    """The container's requests, read from its OCI spec with the config's accept-* rules.

    (A plain class, not a dataclass: importing dataclasses costs milliseconds on the hot path.)
    """

    def __init__(
        self,
        env: dict[str, str],
        mounts: list[dict],
        annotations: dict[str, str],
        privileged: bool,
        annotation_prefixes: tuple[str, ...] = ("cdi.k8s.io/",),
        swarm_resource: str = "",
        accept_envvar_unprivileged: bool = True,
        accept_volume_mounts: bool = False,
        ignore_imex_requests: bool = False,
        warnings: list[str] | None = None,
    ) -> None:
        self.env = env
        self.mounts = mounts
        self.annotations = annotations
        self.privileged = privileged
        self.annotation_prefixes = tuple(annotation_prefixes)
        self.swarm_resource = swarm_resource
        self.accept_envvar_unprivileged = accept_envvar_unprivileged
        self.accept_volume_mounts = accept_volume_mounts
        self.ignore_imex_requests = ignore_imex_requests
        self.warnings: list[str] = [] if warnings is None else warnings

    @classmethod
    def from_spec(
        cls,
        oci_spec: dict,
        cfg: ConfigDict | dict[str, Any],
        annotation_prefixes: tuple[str, ...] | list[str] | None = None,
    ) -> ContainerRequest:
        """Build the view. ``annotation_prefixes`` defaults to the config's
        ``modes.cdi.annotation-prefixes``; pass ``()`` to ignore annotations (non-cdi modes)."""
        process = oci_spec.get("process")
        env = env_dict(process.get("env") if isinstance(process, dict) else None)
        # lenient on purpose (the legacy hook reads specs runc already accepted): wrong-typed
        # parts are ignored here; the shim rejects them earlier (gpuctk.oci.spec.check_spec_shape)
        raw_mounts = oci_spec.get("mounts")
        mounts = [m for m in raw_mounts if isinstance(m, dict)] if isinstance(raw_mounts, list) else []
        raw_annotations = oci_spec.get("annotations")
        annotations = (
            {k: v for k, v in raw_annotations.items() if isinstance(v, str)}
            if isinstance(raw_annotations, dict)
            else {}
        )
        rt = cfg.get("nvidia-container-runtime", {})
        if annotation_prefixes is None:
            annotation_prefixes = (
                rt.get("modes", {}).get("cdi", {}).get("annotation-prefixes", ["cdi.k8s.io/"])
            )
        return cls(
            env=env,
            mounts=mounts,
            annotations=annotations,
            privileged=_is_privileged(oci_spec),
            annotation_prefixes=tuple(annotation_prefixes),
            swarm_resource=cfg.get("swarm-resource", ""),
            accept_envvar_unprivileged=cfg.get(
                "accept-nvidia-visible-devices-envvar-when-unprivileged", True
            ),
            accept_volume_mounts=cfg.get("accept-nvidia-visible-devices-as-volume-mounts", False),
            ignore_imex_requests=bool((cfg.get("features") or {}).get("ignore-imex-channel-requests")),
        )

    def without_annotations(self) -> ContainerRequest:
        """The same view with annotation requests ignored (every mode but ``cdi``)."""
        return ContainerRequest(
            self.env,
            self.mounts,
            self.annotations,
            self.privileged,
            (),
            self.swarm_resource,
            self.accept_envvar_unprivileged,
            self.accept_volume_mounts,
            self.ignore_imex_requests,
            self.warnings,
        )

    # ------------------------------------------------------------- simple facts
    def is_privileged(self) -> bool:
        """``CAP_SYS_ADMIN`` in the bounding set."""
        return self.privileged

    def is_legacy_cuda(self) -> bool:
        """A pre-NVIDIA_REQUIRE_CUDA CUDA image: ``CUDA_VERSION`` set, ``NVIDIA_REQUIRE_CUDA`` not."""
        return bool(self.env.get(ENV_CUDA_VERSION)) and not self.env.get(ENV_REQUIRE_CUDA)

    def _env_accepted(self, what: str) -> bool:
        if self.privileged or self.accept_envvar_unprivileged:
            return True
        self.warnings.append(
            f"ignoring {what} requested by environment variable in an unprivileged container"
        )
        return False

    # ------------------------------------------------------------- devices
    def cdi_devices_from_annotations(self, prefixes: tuple[str, ...] | list[str] | None = None) -> list[str]:
        """Values of annotations whose key starts with a prefix; keys sorted, values split on ','."""
        prefixes = tuple(self.annotation_prefixes if prefixes is None else prefixes)
        if not prefixes:
            return []
        out: list[str] = []
        for key in sorted(self.annotations):
            if key.startswith(prefixes):
                out.extend(self.annotations[key].split(","))
        return out

    def _volume_mount_entries(self) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        root = DEVICE_LIST_AS_VOLUME_MOUNTS_ROOT
        for m in self.mounts:
            src, dst = m.get("source"), m.get("destination")
            if not isinstance(src, str) or not isinstance(dst, str):
                continue
            if posixpath.normpath(src) != "/dev/null":
                continue
            # cleaned like upstream's filepath.Clean: ``…-devices/./5`` and ``…-devices//5`` are GPU 5
            dst = (
                "/" + posixpath.normpath(dst).lstrip("/") if dst.startswith("/") else posixpath.normpath(dst)
            )
            if not dst.startswith(root + "/"):
                continue
            if dst in seen:
                continue
            seen.add(dst)
            rest = dst[len(root) :].strip("/")
            if rest:
                out.append(rest)
        return out

    def devices_from_mounts(self) -> list[str]:
        """Device requests made as ``/dev/null`` mounts under /var/run/nvidia-container-devices.

        ``imex/<id>`` entries are IMEX channels, not devices; ``cdi/<vendor>/<class>/<dev>``
        and ``cdi/<vendor>/<class>=<dev>`` become ``vendor/class=dev``.
        """
        out: list[str] = []
        for entry in self._volume_mount_entries():
            if entry.startswith("imex/"):
                continue
            if entry.startswith("cdi/"):
                rest = entry[len("cdi/") :]
                if "=" not in rest:
                    vendor_class, _, dev = rest.rpartition("/")
                    rest = f"{vendor_class}={dev}"
                if not is_qualified_cdi_name(rest):
                    self.warnings.append(f"ignoring invalid CDI device request {entry!r} in volume mounts")
                    continue
                out.append(rest)
                continue
            out.append(entry)
        return out

    def _devices_from_env(self) -> list[str]:
        names = [n.strip() for n in self.swarm_resource.split(",") if n.strip()]
        selected = [n for n in names if n in self.env]
        if not selected and ENV_VISIBLE_DEVICES in self.env:
            selected = [ENV_VISIBLE_DEVICES]
        if not selected:
            return ["all"] if self.is_legacy_cuda() else []
        tokens: list[str] = []
        for name in selected:
            tokens.extend(_split_list(self.env[name]))
        if not tokens or "void" in tokens:
            return []
        for t in tokens:
            if t in ("all", "none"):
                return [t]
        return tokens

    def visible_devices(self) -> list[str]:
        """The devices requested, in precedence order annotations → volume mounts → env.

        Returns ``[]`` when nothing is requested (or ``void``: the container runs like plain
        runc), ``["all"]``, ``["none"]`` (driver but no GPU), or the requested tokens in
        order (indices, ``g:m``, GPU-/MIG- UUIDs, qualified CDI names). ``all`` is left for
        the caller to expand.
        """
        from_annotations = self.cdi_devices_from_annotations()
        if from_annotations:
            return from_annotations
        if self.accept_volume_mounts:
            from_mounts = self.devices_from_mounts()
            if from_mounts:
                return from_mounts
        devices = self._devices_from_env()
        if devices and not self._env_accepted("NVIDIA_VISIBLE_DEVICES"):
            return []
        return devices

    def only_fully_qualified_cdi_devices(self) -> bool:
        """Every requested device is ``vendor/class=name`` and there is at least one (auto → cdi)."""
        devices = self.visible_devices()
        return bool(devices) and all(is_qualified_cdi_name(d) for d in devices)

    # ------------------------------------------------------------- other requests
    def imex_channels(self) -> list[str]:
        """IMEX channel ids from ``imex/<id>`` mounts or NVIDIA_IMEX_CHANNELS (``all`` ignored)."""
        if self.ignore_imex_requests:
            return []
        if self.accept_volume_mounts:
            from_mounts = [e[len("imex/") :] for e in self._volume_mount_entries() if e.startswith("imex/")]
            from_mounts = [c for c in from_mounts if c]
            if from_mounts:
                return from_mounts
        if ENV_IMEX_CHANNELS not in self.env:
            return []
        tokens = _split_list(self.env[ENV_IMEX_CHANNELS])
        if not tokens or any(t in ("void", "none", "all") for t in tokens):
            return []
        if not self._env_accepted(ENV_IMEX_CHANNELS):
            return []
        return tokens

    def driver_capabilities(self, supported: str | None = None) -> list[str]:
        """NVIDIA_DRIVER_CAPABILITIES: unset/empty → utility,compute; ``all`` → every capability.

        ``supported`` (the config's comma list) restricts the result when given.
        """
        value = self.env.get(ENV_DRIVER_CAPABILITIES, "")
        tokens = _split_list(value)
        if not tokens:
            caps = list(DEFAULT_DRIVER_CAPABILITIES)
        elif "all" in tokens:
            caps = list(ALL_DRIVER_CAPABILITIES)
        else:
            caps = list(dict.fromkeys(tokens))
        if supported is not None:
            allowed = set(_split_list(supported))
            if "all" not in allowed:
                caps = [c for c in caps if c in allowed]
        return caps

    def requirements(self) -> list[str]:
        """NVIDIA_REQUIRE_* values (not NVIDIA_REQUIRE_JETPACK*), plus ``cuda>=M.m`` for legacy images;
        none when NVIDIA_DISABLE_REQUIRE is true."""
        if self.env.get(ENV_DISABLE_REQUIRE, "") in _TRUE_STRINGS:
            return []
        reqs: list[str] = []
        if self.is_legacy_cuda():
            try:
                reqs.append("cuda>=" + parse_major_minor_version(self.env[ENV_CUDA_VERSION]))
            except ValueError:
                self.warnings.append(f"ignoring invalid CUDA_VERSION {self.env[ENV_CUDA_VERSION]!r}")
        for key in sorted(self.env):
            if (
                key.startswith(ENV_REQUIRE_PREFIX)
                and not key.startswith(ENV_REQUIRE_JETPACK)
                and self.env[key]
            ):
                reqs.append(self.env[key])
        return reqs

    def csv_mounts_all(self) -> bool:
        """``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``: CSV mode uses every *.csv file."""
        return self.env.get(ENV_REQUIRE_JETPACK) == "csv-mounts=all"

    def mig_config_devices(self) -> list[str]:
        return _split_list(self.env.get("NVIDIA_MIG_CONFIG_DEVICES", ""))

    def mig_monitor_devices(self) -> list[str]:
        return _split_list(self.env.get("NVIDIA_MIG_MONITOR_DEVICES", ""))

    def feature_enabled(self, name: str) -> bool:
        """Feature-gated requests (NVIDIA_GDS, NVIDIA_MOFED, …): exactly ``enabled``."""
        return self.env.get(name) == "enabled"
