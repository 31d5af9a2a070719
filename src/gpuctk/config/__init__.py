"""The toolkit's config.toml: lookup and load (load.py), ``--set`` and rendering (render.py)."""

import sys

from gpuctk.config.load import (
    ENV_CACHE_DIR,
    ENV_CONFIG_PATH,
    ConfigError,
    clone,
    config_path,
    default_config,
    get,
    load_config,
    read_config,
    validate,
)

TYPE_CHECKING = False  # no `typing` at run time: the shim's create path imports this package
if TYPE_CHECKING:
    from types import ModuleType

    from gpuctk.config.render import parse_value, render, set_value
else:
    ModuleType = type(sys)

# The writer (render.py) is loaded on first use (PEP 562): the runtime shim reads the config
# through load.py and never renders one.
_LAZY = {"parse_value", "render", "set_value"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'gpuctk.config' has no attribute {name!r}")
    __import__("gpuctk.config.render")  # its first import binds the three names here (_Package)
    return getattr(sys.modules["gpuctk.config.render"], name)


class _Package(ModuleType):
    """``gpuctk.config.render`` is the function, as it was when this package imported render.py
    eagerly: the import system binds a submodule to its package's attribute of the same name
    when it first loads it (``import gpuctk.config.render``), and here it gets the function."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "render" and isinstance(value, ModuleType) and value.__name__ == "gpuctk.config.render":
            for lazy in _LAZY:
                super().__setattr__(lazy, getattr(value, lazy))
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_CONFIG_PATH",
    "ConfigError",
    "clone",
    "config_path",
    "default_config",
    "get",
    "load_config",
    "parse_value",
    "read_config",
    "render",
    "set_value",
    "validate",
]
