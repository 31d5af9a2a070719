"""CDI hooks as the generator emits them (NVIDIA/nvidia-container-toolkit
``internal/discover/hooks.go``), and which hook executable a spec names."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # keep `typing` off the warm JIT path
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.generate.options import GenerateOptions

DEFAULT_DISABLED = ("chmod",)


UPSTREAM_HOOK = "/usr/bin/nvidia-cdi-hook"


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _which(name: str) -> str | None:
    """shutil.which without importing shutil (it pulls in ``re``: the JIT path runs per create)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", name)
        if _executable(cand):
            return cand
    return None


def choose_hook_path(configured: str | None = None) -> tuple[str, str, bool]:
    """(hook executable, where it came from, whether it is the last-resort fallback).

    As upstream (``cmd/nvidia-ctk/cdi/generate/generate.go``, ``internal/config`` hook path
    resolution): the ``[nvidia-ctk] path`` of config.toml when it is set (its sibling
    ``nvidia-cdi-hook`` when that launcher is installed there: what ``gpuctk install`` lays
    out), else the installed ``nvidia-cdi-hook`` (PATH, then /usr/bin). Only when nothing is
    installed: this environment's own ``gpuctk-hook`` (the caller warns: a spec naming a
    virtualenv path breaks when that environment moves).
    """
    if configured and configured != "nvidia-ctk":  # "nvidia-ctk" is the schema default
        if os.path.isabs(configured):
            sibling = os.path.join(os.path.dirname(configured), "nvidia-cdi-hook")
            if os.path.basename(configured) == "nvidia-ctk" and _executable(sibling):
                return sibling, f"beside [nvidia-ctk] path {configured} in config.toml", False
            return configured, "[nvidia-ctk] path in config.toml", False
        found = _which(configured)
        if found:
            return found, f"[nvidia-ctk] path {configured!r} in config.toml, found on PATH", False
    found = _which("nvidia-cdi-hook")
    if found:
        return found, "the installed nvidia-cdi-hook launcher (PATH)", False
    if _executable(UPSTREAM_HOOK):
        return UPSTREAM_HOOK, "the installed nvidia-cdi-hook launcher", False
    own = os.path.join(os.path.dirname(sys.executable), "gpuctk-hook")
    if not _executable(own):
        own = _which("gpuctk-hook") or UPSTREAM_HOOK
    return own, "gpuctk's own gpuctk-hook: no nvidia-cdi-hook launcher is installed", True


def default_hook_path() -> str:
    """The hook a spec names when neither the caller nor config.toml says (see choose_hook_path)."""
    return choose_hook_path(None)[0]


def resolve_hook_path(path: str | None) -> str:
    """An explicit hook path as upstream resolves ``--nvidia-cdi-hook-path``: absolute as
    given, else looked up on PATH, else /usr/bin/<name>; None: :func:`default_hook_path`."""
    if not path:
        return default_hook_path()
    if os.path.isabs(path):
        return path
    return _which(path) or ("/usr/bin/" + os.path.basename(path))


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
