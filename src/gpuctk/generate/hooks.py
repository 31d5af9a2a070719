"""CDI hooks as the generator emits them (reference §4.6)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # keep `typing` off the warm JIT path
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.generate.options import GenerateOptions

DEFAULT_DISABLED = ("chmod",)


def default_hook_path() -> str:
    """The installed ``gpuctk-hook``: next to this interpreter, on PATH, else /usr/bin."""
    cand = os.path.join(os.path.dirname(sys.executable), "gpuctk-hook")
    if os.path.exists(cand):
        return cand
    import shutil

    return shutil.which("gpuctk-hook") or "/usr/bin/gpuctk-hook"


def resolve_hook_path(path: str | None) -> str:
    if not path:
        return default_hook_path()
    if os.path.isabs(path):
        return path
    import shutil

    return shutil.which(path) or ("/usr/bin/" + os.path.basename(path))


def hook_argv(hook_path: str, name: str, args: list[str]) -> list[str]:
    """argv of a hook: ``[nvidia-ctk, hook, name, ...]`` for nvidia-ctk (and ``gpuctk``),
    else ``[<basename>, name, ...]`` (nvidia-cdi-hook, gpuctk-hook)."""
    base = os.path.basename(hook_path)
    if base in ("nvidia-ctk", "gpuctk"):
        return [base, "hook", name, *args]
    return [base or "nvidia-cdi-hook", name, *args]


def hook_enabled(name: str, opts: GenerateOptions) -> bool:
    if name in opts.enabled_hooks:
        return True
    if name in DEFAULT_DISABLED:
        return False
    return not ("all" in opts.disabled_hooks or name in opts.disabled_hooks)


def make_hook(opts: GenerateOptions, hook_path: str, name: str, args: list[str]) -> dict[str, Any] | None:
    """One createContainer hook, or None when disabled."""
    if not hook_enabled(name, opts):
        return None
    return {
        "hookName": "createContainer",
        "path": hook_path,
        "args": hook_argv(hook_path, name, args),
        "env": ["NVIDIA_CTK_DEBUG=false"],
    }


def symlinks_hook(opts: GenerateOptions, hook_path: str, links: list[str]) -> dict[str, Any] | None:
    # one target per link path: the first one found wins (a later, conflicting link
    # for the same path would make the hook's result depend on argument order)
    by_link: dict[str, str] = {}
    for link in links:
        by_link.setdefault(link.partition("::")[2], link)
    uniq = list(by_link.values())
    if not uniq:
        return None
    args: list[str] = []
    for link in uniq:
        args += ["--link", link]
    return make_hook(opts, hook_path, "create-symlinks", args)


def ldcache_hook(opts: GenerateOptions, hook_path: str, folders: list[str]) -> dict[str, Any] | None:
    uniq = list(dict.fromkeys(folders))
    if not uniq:
        return None
    args: list[str] = []
    if opts.ldconfig_path:
        args += ["--ldconfig-path", opts.ldconfig_path]
    for d in uniq:
        args += ["--folder", d]
    return make_hook(opts, hook_path, "update-ldcache", args)
