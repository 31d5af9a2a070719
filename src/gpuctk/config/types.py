"""The typed shape of the toolkit config (``load_config()``'s nested dict), for mypy only.

A wrong key (``cfg["nvidia-container-runtime"]["mdoe"]``) or a wrong use of a value is a type
error, not a ``KeyError`` at run time. Hot paths import this module only under
``TYPE_CHECKING`` (with ``from __future__ import annotations``), so nothing here, and not
``typing`` either, is imported when a container starts. The keys and their types follow
``gpuctk.config.schema.SCHEMA`` (a test checks that the two agree) and upstream's Go structs
(NVIDIA/nvidia-container-toolkit `api/config/v1/config.go`, `api/config/v1/runtime.go`,
`api/config/v1/cli.go`, `api/config/v1/features.go`).
"""

from __future__ import annotations

from typing import TypedDict

CliConfig = TypedDict(
    "CliConfig",
    {
        "root": str,
        "path": str,
        "environment": list[str],
        "debug": str,
        "ldcache": str,
        "load-kmods": bool,
        "no-pivot": bool,
        "no-cgroups": bool,
        "user": str,
        "ldconfig": str,
    },
)

CdiModeConfig = TypedDict(
    "CdiModeConfig",
    {"spec-dirs": list[str], "default-kind": str, "annotation-prefixes": list[str]},
)

CsvModeConfig = TypedDict("CsvModeConfig", {"mount-spec-path": str, "compat-container-root": str})

JitCdiModeConfig = TypedDict(
    "JitCdiModeConfig", {"nvcdi-feature-flags": list[str], "nvcdi-disable-hooks": list[str]}
)

LegacyModeConfig = TypedDict("LegacyModeConfig", {"cuda-compat-mode": str})

ModesConfig = TypedDict(
    "ModesConfig",
    {"cdi": CdiModeConfig, "csv": CsvModeConfig, "jit-cdi": JitCdiModeConfig, "legacy": LegacyModeConfig},
)

RuntimeConfig = TypedDict(
    "RuntimeConfig",
    {
        "debug": str,
        "log-level": str,
        "runtimes": list[str],
        "mode": str,
        "sandbox": str,
        "modes": ModesConfig,
    },
)

RuntimeHookConfig = TypedDict("RuntimeHookConfig", {"path": str, "skip-mode-detection": bool})


class CtkConfig(TypedDict):
    path: str


# upstream's *bool feature flags: None = unset
FeaturesConfig = TypedDict(
    "FeaturesConfig",
    {
        "allow-cuda-compat-libs-from-container": bool | None,
        "allow-ldconfig-from-container": bool | None,
        "allow-unknown-oci-spec-fields": bool | None,
        "disable-cuda-compat-lib-hook": bool | None,
        "disable-imex-channel-creation": bool | None,
        "ignore-imex-channel-requests": bool | None,
        "no-additional-gids-for-device-nodes": bool | None,
    },
)

ConfigDict = TypedDict(
    "ConfigDict",
    {
        "disable-require": bool,
        "swarm-resource": str,
        "accept-nvidia-visible-devices-envvar-when-unprivileged": bool,
        "accept-nvidia-visible-devices-as-volume-mounts": bool,
        "supported-driver-capabilities": str,
        "nvidia-container-cli": CliConfig,
        "nvidia-container-runtime": RuntimeConfig,
        "nvidia-container-runtime-hook": RuntimeHookConfig,
        "nvidia-ctk": CtkConfig,
        "features": FeaturesConfig,
    },
)

__all__ = [
    "CdiModeConfig",
    "CliConfig",
    "ConfigDict",
    "CsvModeConfig",
    "CtkConfig",
    "FeaturesConfig",
    "JitCdiModeConfig",
    "LegacyModeConfig",
    "ModesConfig",
    "RuntimeConfig",
    "RuntimeHookConfig",
]
