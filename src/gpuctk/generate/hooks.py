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


# ---------------------------------------------------------------- one process for gpuctk's own hook

STEPS_SUBCOMMAND = "run-steps"  # gpuctk.hooks.steps.SUBCOMMAND
OWN_HOOK_NAME = "gpuctk-hook"


def own_hook_executable() -> str:
    """This environment's ``gpuctk-hook`` (beside the interpreter)."""
    return os.path.join(os.path.dirname(sys.executable), OWN_HOOK_NAME)


def is_own_hook(hook_path: str) -> bool:
    """Whether a spec naming ``hook_path`` may use gpuctk-only hook subcommands: the path is
    named ``gpuctk-hook`` and resolves (through launcher symlinks) to the very executable of
    the gpuctk that generates the spec. An upstream name (``nvidia-cdi-hook``, ``nvidia-ctk``,
    even when gpuctk's launcher answers it) or a path that does not exist here keeps upstream's
    one-hook-per-step shape: whatever runs there later understands it."""
    if os.path.basename(hook_path) != OWN_HOOK_NAME or not os.path.isabs(hook_path):
        return False
    own = own_hook_executable()
    if not _executable(hook_path) or not _executable(own):
        return False
    return os.path.realpath(hook_path) == os.path.realpath(own)


def _step_argv(hook: dict[str, Any]) -> list[str] | None:
    """``[name, flag…]`` of a single-step gpuctk-hook entry, else None."""
    args = hook.get("args") or []
    if os.path.basename(str(hook.get("path", ""))) != OWN_HOOK_NAME or len(args) < 2:
        return None
    if args[0] != OWN_HOOK_NAME or args[1] == STEPS_SUBCOMMAND or args[1].startswith("-"):
        return None
    return list(args[1:])


def combine_hooks(hooks: list[Any]) -> list[Any]:
    """Runs of adjacent single-step ``gpuctk-hook`` createContainer hooks with the same path,
    env and no timeout, each as ONE ``gpuctk-hook run-steps`` hook whose steps are the
    hooks' argv in order (see gpuctk.hooks.steps); anything else is kept as it is. A run of
    one stays a plain hook. :func:`expand_hooks` is the inverse."""
    out: list[Any] = []
    run: list[dict[str, Any]] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            from gpuctk.hooks.steps import encode  # only when hooks merge

            steps = [_step_argv(h) or [] for h in run]
            first = run[0]
            out.append({**first, "args": [OWN_HOOK_NAME, STEPS_SUBCOMMAND, *encode(steps)]})
        run.clear()

    for h in hooks:
        if not isinstance(h, dict):
            flush()
            out.append(h)
            continue
        same = (
            run
            and h.get("path") == run[0].get("path")
            and h.get("env") == run[0].get("env")
            and h.get("hookName") == run[0].get("hookName")
        )
        if _step_argv(h) is None or h.get("hookName") != "createContainer" or "timeout" in h:
            flush()
            out.append(h)
            continue
        if not same:
            flush()
        run.append(h)
    flush()
    return out


def expand_hooks(hooks: list[Any]) -> list[Any]:
    """Every ``gpuctk-hook run-steps`` hook as its steps, one hook each (for consumers that
    need upstream's shape, e.g. a runsc-ready spec); other hooks unchanged. A malformed
    step list is kept as it is (the hook itself refuses it)."""
    out: list[Any] = []
    for h in hooks:
        args = (h.get("args") if isinstance(h, dict) else None) or []
        if (
            isinstance(args, list)
            and all(isinstance(a, str) for a in args)
            and os.path.basename(str(h.get("path", ""))) == OWN_HOOK_NAME
            and len(args) >= 2
            and args[1] == STEPS_SUBCOMMAND
        ):
            from gpuctk.hooks.steps import StepsError, decode  # only for a run-steps hook

            try:
                steps = decode(list(args[2:]))
            except StepsError:
                out.append(h)
                continue
            out.extend({**h, "args": [args[0], *step]} for step in steps)
        else:
            out.append(h)
    return out


def merge_symlink_hooks(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All single-step ``gpuctk-hook create-symlinks`` hooks of one device's edits as one
    (the ``all`` device unites eight GPUs' by-path links): links in order, first target per
    link path wins, as :func:`symlinks_hook` does. Other hooks keep their places."""
    links: list[str] = []
    first = -1
    out: list[dict[str, Any]] = []
    for h in hooks:
        step = _step_argv(h) or []
        if (
            step[:1] == ["create-symlinks"]
            and len(step) % 2 == 1
            and all(f == "--link" for f in step[1::2])
            and h.get("hookName") == "createContainer"
            and "timeout" not in h
        ):
            if first < 0:
                first = len(out)
                out.append(h)
            elif h.get("path") != out[first].get("path") or h.get("env") != out[first].get("env"):
                out.append(h)
                continue
            links += step[2::2]
            continue
        out.append(h)
    if first >= 0:
        by_link: dict[str, str] = {}
        for link in links:
            by_link.setdefault(link.partition("::")[2], link)
        args: list[str] = [OWN_HOOK_NAME, "create-symlinks"]
        for link in by_link.values():
            args += ["--link", link]
        out[first] = {**out[first], "args": args}
    return out


def _launcher_steps(path: object, args: list[Any], own: str) -> list[str] | None:
    """``[name, flag…]`` when ``path`` is, right now, a launcher of this gpuctk's hook under an
    upstream name (what ``gpuctk install`` lays out: ``nvidia-cdi-hook`` a symlink to it,
    ``nvidia-ctk`` the marked sh wrapper exec'ing it), else None."""
    if not (isinstance(path, str) and os.path.isabs(path) and all(isinstance(a, str) for a in args)):
        return None
    base = os.path.basename(path)
    if base == "nvidia-cdi-hook" and len(args) >= 2 and args[0] == base and not args[1].startswith("-"):
        if _executable(path) and os.path.realpath(path) == os.path.realpath(own):
            return list(args[1:])
    elif (
        base == "nvidia-ctk" and len(args) >= 3 and args[:2] == [base, "hook"] and not args[2].startswith("-")
    ):
        try:
            with open(path, "rb") as f:
                text = f.read(4096).decode("utf-8", "replace")
        except OSError:
            return None
        if text.startswith("#!/bin/sh\n# gpuctk launcher") and (
            f"exec {own} " in text or f"exec '{own}' " in text
        ):
            return list(args[2:])
    return None


def merge_injected_hooks(entries: list[Any]) -> list[Any]:
    """OCI ``createContainer`` entries the shim just injected (CDI already chose the devices:
    common edits, then each requested device's), with adjacent hooks of THIS gpuctk's
    ``gpuctk-hook`` (:func:`is_own_hook`; single steps or run-steps; also ``nvidia-cdi-hook`` /
    ``nvidia-ctk`` when they are, at this moment, this gpuctk's launchers) merged into one
    ``run-steps`` process of this gpuctk's ``gpuctk-hook``: the same steps in the same order. Entries of any other executable,
    with a ``timeout`` or another env, are boundaries and stay as they are."""
    own: dict[str, bool] = {}
    own_exe = own_hook_executable()
    tagged: list[Any] = []
    launchers: dict[int, Any] = {}  # upstream-named launcher entries, as rewritten -> as given
    for e in entries:
        path = e.get("path") if isinstance(e, dict) else None
        if isinstance(path, str) and path not in own:
            own[path] = is_own_hook(path)
        if isinstance(path, str) and own[path]:
            tagged.append({"hookName": "createContainer", **e})
            continue
        steps = _launcher_steps(path, list(e.get("args") or []), own_exe) if isinstance(e, dict) else None
        if steps is None:
            tagged.append(e)
            continue
        rewritten = {**e, "hookName": "createContainer", "path": own_exe, "args": [OWN_HOOK_NAME, *steps]}
        launchers[id(rewritten)] = e
        tagged.append(rewritten)
    merged = combine_hooks(expand_hooks(tagged))
    # a launcher entry with no neighbour to merge with keeps the shape it was given
    merged = [launchers.get(id(h), h) for h in merged]
    return [{k: v for k, v in h.items() if k != "hookName"} if isinstance(h, dict) else h for h in merged]
