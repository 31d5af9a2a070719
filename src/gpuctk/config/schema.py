"""The config.toml schema: every key, its type and its default (NVIDIA/nvidia-container-toolkit
`api/config/v1/config.go`, `api/config/v1/runtime.go`, `api/config/v1/cli.go`, `api/config/v1/features.go`).

Stdlib only and cheap to import: the legacy hook reads this on every container start, the
runtime shim whenever its parsed-config cache misses.
"""

from __future__ import annotations

# defined in load.py, which builds the parsed-config cache key from them without this module
from gpuctk.config.load import host_defaults, is_suse  # noqa: F401 - re-exported

# Key types.
BOOL = "bool"
STR = "str"
LIST = "list"  # list of strings
FEATURE = "feature"  # optional bool (None = unset), upstream's *feature pointers

# dotted key -> (type, default). Defaults that depend on the host are filled in by
# ``host_defaults()``. Order does not matter: rendering sorts keys like upstream.
SCHEMA: dict[str, tuple[str, object]] = {
    "disable-require": (BOOL, False),
    "swarm-resource": (STR, ""),
    "accept-nvidia-visible-devices-envvar-when-unprivileged": (BOOL, True),
    "accept-nvidia-visible-devices-as-volume-mounts": (BOOL, False),
    "supported-driver-capabilities": (STR, "compat32,compute,display,graphics,ngx,utility,video"),
    "nvidia-container-cli.root": (STR, ""),
    "nvidia-container-cli.path": (STR, ""),
    "nvidia-container-cli.environment": (LIST, []),
    "nvidia-container-cli.debug": (STR, ""),
    "nvidia-container-cli.ldcache": (STR, ""),
    "nvidia-container-cli.load-kmods": (BOOL, True),
    "nvidia-container-cli.no-pivot": (BOOL, False),
    "nvidia-container-cli.no-cgroups": (BOOL, False),
    "nvidia-container-cli.user": (STR, ""),
    "nvidia-container-cli.ldconfig": (STR, "@/sbin/ldconfig"),
    "nvidia-container-runtime.debug": (STR, "/dev/null"),
    "nvidia-container-runtime.log-level": (STR, "info"),
    "nvidia-container-runtime.runtimes": (LIST, ["runc", "crun"]),
    "nvidia-container-runtime.mode": (STR, "auto"),
    "nvidia-container-runtime.sandbox": (STR, ""),  # gpuctk extension: "" or "gvisor"
    "nvidia-container-runtime.modes.cdi.spec-dirs": (LIST, ["/etc/cdi", "/var/run/cdi"]),
    "nvidia-container-runtime.modes.cdi.default-kind": (STR, "nvidia.com/gpu"),
    "nvidia-container-runtime.modes.cdi.annotation-prefixes": (LIST, ["cdi.k8s.io/"]),
    "nvidia-container-runtime.modes.csv.mount-spec-path": (
        STR,
        "/etc/nvidia-container-runtime/host-files-for-container.d",
    ),
    "nvidia-container-runtime.modes.csv.compat-container-root": (STR, ""),
    "nvidia-container-runtime.modes.jit-cdi.nvcdi-feature-flags": (LIST, []),
    "nvidia-container-runtime.modes.jit-cdi.nvcdi-disable-hooks": (LIST, []),
    "nvidia-container-runtime.modes.legacy.cuda-compat-mode": (STR, "ldconfig"),
    "nvidia-container-runtime-hook.path": (STR, "nvidia-container-runtime-hook"),
    "nvidia-container-runtime-hook.skip-mode-detection": (BOOL, False),
    "nvidia-ctk.path": (STR, "nvidia-ctk"),
    "features.allow-cuda-compat-libs-from-container": (FEATURE, None),
    "features.allow-ldconfig-from-container": (FEATURE, None),
    "features.allow-unknown-oci-spec-fields": (FEATURE, None),
    "features.disable-cuda-compat-lib-hook": (FEATURE, None),
    "features.disable-imex-channel-creation": (FEATURE, None),
    "features.ignore-imex-channel-requests": (FEATURE, None),
    "features.no-additional-gids-for-device-nodes": (FEATURE, None),
}

# Keys upstream leaves out of a rendered file unless they were set (Go `omitempty`).
OMITTED_UNLESS_SET = frozenset(
    {
        "nvidia-container-cli.no-pivot",
        "nvidia-container-runtime.sandbox",
        "nvidia-container-runtime.modes.csv.compat-container-root",
        "nvidia-container-runtime.modes.jit-cdi.nvcdi-feature-flags",
        "nvidia-container-runtime.modes.jit-cdi.nvcdi-disable-hooks",
    }
)

# Keys rendered as a comment holding a "display default" when unset, empty or equal to it
# (NVIDIA/nvidia-container-toolkit `api/config/v1/toml.go`).
COMMENTED_DEFAULTS: dict[str, object] = {
    "swarm-resource": "DOCKER_RESOURCE_GPU",
    "accept-nvidia-visible-devices-envvar-when-unprivileged": True,
    "accept-nvidia-visible-devices-as-volume-mounts": False,
    "nvidia-container-cli.root": "/run/nvidia/driver",
    "nvidia-container-cli.path": "/usr/bin/nvidia-container-cli",
    "nvidia-container-cli.debug": "/var/log/nvidia-container-toolkit.log",
    "nvidia-container-cli.ldcache": "/etc/ld.so.cache",
    "nvidia-container-cli.no-cgroups": False,
    "nvidia-container-cli.user": "root:video",
    "nvidia-container-runtime.debug": "/var/log/nvidia-container-runtime.log",
}

VALID_MODES = ("auto", "legacy", "cdi", "jit-cdi", "csv")
VALID_SANDBOXES = ("", "gvisor")
VALID_CUDA_COMPAT_MODES = ("ldconfig", "hook", "mount", "disabled")
