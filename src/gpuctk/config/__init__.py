"""The toolkit's config.toml: lookup and load (load.py), ``--set`` and rendering (render.py)."""

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
from gpuctk.config.render import parse_value, render, set_value

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
