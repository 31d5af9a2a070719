"""Launchers for gpuctk's executables under gpuctk and upstream-compatible names.

Choice (tested in tests/install): the runtime and hook launchers are **symlinks** to the
console scripts of the Python environment gpuctk runs from. The kernel hands the *symlink
path* to the script's interpreter, so ``argv[0]`` keeps the invoked name
(``nvidia-container-runtime.cdi``) and the shim picks its mode from it. ``gpuctk-runtime``
(``-cdi``, ``-legacy``) is the POSIX ``sh`` front end (gpuctk/runtime/scripts/gpuctk-runtime):
through a launcher, pass-through commands (``state``, ``start``, ``delete``…) exec the
low-level runtime without Python, and ``create`` resolves the link once (``readlink -f``) to
find the environment's interpreter. ``gpuctk-hook`` and ``gpuctk-runtime-hook`` are the hooks'
``sh`` front end (gpuctk/hooks/scripts/gpuctk-hook; docs/hooks.md): through the
``nvidia-cdi-hook`` / ``nvidia-container-runtime-hook`` links it resolves the link the same way,
with a fixed ``PATH`` (a hook's environment may be the image's), and starts ``python -I -S``
with the environment's own import path. ``nvidia-ctk`` is a small ``/bin/sh`` wrapper because it
must dispatch: ``nvidia-ctk hook <name> …`` runs ``gpuctk-hook <name> …`` and every other
command runs ``gpuctk …``. :func:`compile_bytecode` compiles the package the launchers run, so
the first container start after an install does not pay for it.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

from gpuctk.errors import GpuctkError
from gpuctk.fileio import atomic_write

# launcher name -> console script it runs
SYMLINKS: dict[str, str] = {
    "gpuctk": "gpuctk",
    "gpuctk-runtime": "gpuctk-runtime",
    "gpuctk-runtime-cdi": "gpuctk-runtime-cdi",
    "gpuctk-runtime-legacy": "gpuctk-runtime-legacy",
    "gpuctk-hook": "gpuctk-hook",
    "gpuctk-runtime-hook": "gpuctk-runtime-hook",
    "nvidia-container-runtime": "gpuctk-runtime",
    "nvidia-container-runtime.cdi": "gpuctk-runtime-cdi",
    "nvidia-container-runtime.legacy": "gpuctk-runtime-legacy",
    "nvidia-container-runtime-hook": "gpuctk-runtime-hook",
    "nvidia-cdi-hook": "gpuctk-hook",
}
WRAPPERS = ("nvidia-ctk",)
MARKER = "# gpuctk launcher"


def scripts_dir() -> str:
    """Where the console scripts of the running environment live."""
    return os.path.dirname(sys.executable)


def nvidia_ctk_wrapper(bin_dir: str) -> str:
    gpuctk = shlex.quote(os.path.join(bin_dir, "gpuctk"))
    hook = shlex.quote(os.path.join(bin_dir, "gpuctk-hook"))
    return (
        "#!/bin/sh\n"
        f"{MARKER}: nvidia-ctk front end (`hook` -> gpuctk-hook, everything else -> gpuctk)\n"
        'if [ "$1" = hook ]; then\n'
        "  shift\n"
        f'  exec {hook} "$@"\n'
        "fi\n"
        f'exec {gpuctk} "$@"\n'
    )


@dataclass
class Launcher:
    path: str
    kind: str  # "symlink" or "wrapper"
    target: str  # symlink target or the wrapper text


def plan_launchers(toolkit_dir: str, bin_dir: str | None = None) -> list[Launcher]:
    bin_dir = bin_dir or scripts_dir()
    out = []
    for name, script in SYMLINKS.items():
        out.append(Launcher(os.path.join(toolkit_dir, name), "symlink", os.path.join(bin_dir, script)))
    out.append(Launcher(os.path.join(toolkit_dir, "nvidia-ctk"), "wrapper", nvidia_ctk_wrapper(bin_dir)))
    return out


def missing_scripts(launchers: list[Launcher]) -> list[str]:
    return [lc.target for lc in launchers if lc.kind == "symlink" and not os.path.exists(lc.target)]


def install_launcher(lc: Launcher) -> bool:
    """Create or refresh one launcher; returns True when something changed."""
    if lc.kind == "symlink":
        if os.path.islink(lc.path) and os.readlink(lc.path) == lc.target:
            return False
        if os.path.lexists(lc.path) and not is_ours(lc.path):
            raise GpuctkError(f"{lc.path}: exists and is not a gpuctk launcher; remove it first")
        tmp = f"{lc.path}.gpuctk-tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(lc.target, tmp)
        os.replace(tmp, lc.path)  # atomic swap of the link
        return True
    if not os.path.lexists(lc.path):
        atomic_write(lc.path, lc.target, 0o755)
        return True
    if not is_ours(lc.path):  # an upstream binary, a directory, someone else's script
        raise GpuctkError(f"{lc.path}: exists and is not a gpuctk launcher; remove it first")
    with open(lc.path) as f:
        if f.read() == lc.target:
            return False
    atomic_write(lc.path, lc.target, 0o755)
    return True


def is_ours(path: str) -> bool:
    if os.path.islink(path):
        return os.path.basename(os.readlink(path)).startswith("gpuctk")
    try:
        with open(path) as f:
            return MARKER in f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False


def compile_bytecode() -> list[str]:
    """Compile gpuctk's modules (the create path starts ``python -I -S`` and imports them) and
    write the preload bundles of the shim and the hook; returns warnings. A package dir we cannot write (a read-only image) is left as it is:
    Python then compiles in memory on every start, which is slower but correct."""
    import compileall

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        ok = compileall.compile_dir(pkg, quiet=2, workers=1)
    except OSError as exc:
        return [f"{pkg}: cannot compile bytecode: {exc.strerror}"]
    from gpuctk.install.preload import build

    # the shim's create path and the hook start from one bundle of their modules (gpuctk._preload)
    return ([] if ok else [f"{pkg}: some modules could not be compiled to bytecode"]) + build(pkg)
