"""Options of one CDI spec generation (`gpuctk cdi generate`, the JIT path, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpuctk.generate.constants import (  # noqa: F401  (re-exported)
    CSV_BASE_FILES,
    CSV_DEFAULT_DIR,
    FEATURE_FLAGS,
    HOOK_NAMES,
    MODES,
    NAME_STRATEGIES,
)


@dataclass
class GenerateOptions:
    """Everything a generation depends on. Paths are host paths.

    ``inventory``: an Inventory object, a fixture-JSON path, or None to pick a backend
    (``$GPUCTK_INVENTORY``, then NVML for the host root, then procfs/sysfs under the root).
    ``hook_path``: the executable named in hooks; None = the installed ``nvidia-cdi-hook``, else
    this environment's ``gpuctk-hook`` (:func:`gpuctk.generate.hooks.choose_hook_path`).
    ``vendor``/``device_class``: None = upstream's per-mode library defaults (``pkg/nvcdi``):
    ``management.nvidia.com`` for management, the mode name (gds, mofed, gdrcopy, nvswitch) or
    ``imex-channel`` as class; the CLI passes ``nvidia.com``/``gpu`` as ``nvidia-ctk`` does.
    """

    mode: str = "auto"
    driver_root: str = "/"
    dev_root: str | None = None
    device_name_strategies: list[str] = field(default_factory=lambda: ["index", "uuid"])
    device_ids: list[str] = field(default_factory=lambda: ["all"])
    vendor: str | None = None
    device_class: str | None = None
    hook_path: str | None = None
    ldconfig_path: str | None = None
    disabled_hooks: list[str] = field(default_factory=list)
    enabled_hooks: list[str] = field(default_factory=list)
    feature_flags: list[str] = field(default_factory=list)
    no_all_device: bool = False
    csv_files: list[str] = field(default_factory=list)
    csv_ignore_patterns: list[str] = field(default_factory=list)
    inventory: Any = None
    config_search_paths: list[str] = field(default_factory=list)
    library_search_paths: list[str] = field(default_factory=list)
