"""Build the preload bundles that :mod:`gpuctk._preload` loads (``gpuctk install``, ``make venv``).

For each entry of :data:`gpuctk._preload.ENTRIES`, a fresh ``python -I -S`` imports the entry's
modules with a recording finder in front of the normal one, so the bundle holds exactly the
modules those imports run, from the files they run, in the order they complete. Each module is
compiled from its source the way CPython's source loader compiles it, and recorded with its
size and mtime; the bundle is written atomically next to the package's ``.pyc`` files.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import subprocess
import sys
from types import CodeType

from gpuctk import _preload
from gpuctk.fileio import atomic_write

# loaded by the launcher before the bundle is: never in it
_LOADED_FIRST = ("gpuctk", "gpuctk._preload")

_RECORDER = """
import importlib, json, sys
from importlib.machinery import PathFinder
sys.path.append(sys.argv[1])
done = []
class Wrap:
    def __init__(self, inner): self.inner = inner
    def create_module(self, spec): return self.inner.create_module(spec)
    def exec_module(self, module):
        self.inner.exec_module(module)
        done.append([module.__name__, module.__file__, hasattr(module, "__path__")])
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name != "gpuctk" and not name.startswith("gpuctk."):
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = Wrap(spec.loader)
        return spec
sys.meta_path.insert(0, Recorder())
for root in sys.argv[2:]:
    importlib.import_module(root)
print(json.dumps(done))
"""


class PreloadBuildError(Exception):
    pass


def record(
    roots: tuple[str, ...], package_dir: str, python: str = sys.executable
) -> list[tuple[str, str, bool]]:
    """(module, source file, is package) of what importing ``roots`` runs, in completion order."""
    p = subprocess.run(
        [python, "-I", "-S", "-c", _RECORDER, os.path.dirname(package_dir), *roots],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PreloadBuildError(f"importing {', '.join(roots)} failed: {last}")
    return [(n, f, bool(k)) for n, f, k in json.loads(p.stdout)]


def _compiled(name: str, src: str) -> tuple[str, bool, str, int, int, CodeType]:
    for _ in range(3):  # a source rewritten while we read it: read again
        before = os.stat(src)
        with open(src, "rb") as f:
            source = f.read()
        after = os.stat(src)
        if (
            (before.st_size, before.st_mtime_ns)
            == (after.st_size, after.st_mtime_ns)
            == (
                len(source),
                after.st_mtime_ns,
            )
        ):
            code = compile(source, src, "exec", dont_inherit=True)
            return name, src.endswith("/__init__.py"), src, after.st_size, after.st_mtime_ns, code
    raise PreloadBuildError(f"{src}: changed while it was read")


def build_entry(entry: str, package_dir: str, python: str = sys.executable) -> str:
    """Write ``entry``'s bundle; returns its path."""
    # paths spelled as the launchers import them (an abspath, not a realpath: _preload compares
    # the bundle's sources with the directory it was itself imported from)
    pkg = os.path.abspath(package_dir)
    modules = []
    for name, src, _is_pkg in record(_preload.ENTRIES[entry], pkg, python):
        if name in _LOADED_FIRST:
            continue
        if not src.startswith(pkg + "/") or not src.endswith(".py"):
            raise PreloadBuildError(f"{name}: imported from {src}, not from {pkg}")
        modules.append(_compiled(name, src))
    data = marshal.dumps(
        (_preload.FORMAT, importlib.util.MAGIC_NUMBER, sys.implementation.cache_tag, tuple(modules))
    )
    path = _preload.bundle_path(entry, pkg)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, data, 0o644)
    return path


def build(package_dir: str | None = None, python: str = sys.executable) -> list[str]:
    """Every entry's bundle for the package at ``package_dir`` (this gpuctk by default);
    returns warnings (a package dir we cannot write: the entries then import normally)."""
    pkg = package_dir or os.path.dirname(os.path.abspath(_preload.__file__))
    warnings = []
    for entry in _preload.ENTRIES:
        try:
            build_entry(entry, pkg, python)
        except (OSError, PreloadBuildError, subprocess.SubprocessError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            warnings.append(f"{pkg}: preload bundle {entry!r} not written: {why}")
    return warnings


if __name__ == "__main__":  # make venv: python -m gpuctk.install.preload
    problems = build()
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    sys.exit(1 if problems else 0)
