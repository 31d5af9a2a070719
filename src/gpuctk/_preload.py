"""Preloaded bytecode for the two processes gpuctk starts per container: the shim's ``create``
and the hook (issue 15: time to a running GPU container).

Importing a module costs about a quarter of a millisecond of importlib's own work on a small VM
(a finder walking ``sys.path``, stat calls, opening and checking a ``.pyc``), whatever the size
of the module; the create path imports about thirty gpuctk modules and the hook about fifteen.
A *bundle* holds the code objects of one entry's modules, in the order their imports complete,
in one file; the entry's launcher calls :func:`load` first, which executes them into fresh module
objects, so the entry's own ``import`` statements find them in ``sys.modules``.

Freshness and trust, as strict as CPython's own ``.pyc`` check or stricter:

- a bundle lives in the package's own ``__pycache__`` (the directory CPython already loads
  bytecode from), is written only by :func:`build` (``gpuctk install``, ``make venv``; never by
  the hot path), atomically, and is refused when it is not a regular file, is writable by group
  or others, or belongs to neither root nor this user;
- it names this interpreter's bytecode magic and cache tag, and for every module the source's
  path (inside the directory this module was imported from), size and ``st_mtime_ns``: one
  ``stat`` each before anything runs; any difference and the bundle is not used at all;
- anything unexpected while loading (an unreadable file, an exception in a module body) drops
  what was loaded from ``sys.modules`` and leaves the normal imports to run, which then behave
  exactly as without a bundle.

Modules an entry imports that are not in its bundle (a cold path, a new lazy import) are found
the normal way; ``tests/core/test_preload.py`` runs the installed entries and checks that their
usual paths open no gpuctk ``.pyc`` at all.

Stdlib only; no ``from __future__`` (its module costs an import too).
"""

import os
import sys

TYPE_CHECKING = False  # no `typing` at run time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

FORMAT = "gpuctk-preload 1"
SIZE_LIMIT = 16 << 20  # a bundle is a few hundred KiB

# What each entry imports on its usual path (lazily imported modules included); the bundle is
# these and everything they import at module level, in completion order.
ENTRIES = {
    "hook": (
        "gpuctk.hooks.main",
        "gpuctk.hooks.deadline",
        "gpuctk.hooks.confine",
        "gpuctk.hooks.state",
        "gpuctk.hooks.steps",
        "gpuctk.hooks.simple",
        "gpuctk.hooks.ldfresh",
        "gpuctk.hooks.compat",
        "gpuctk.hooks.params",
        "gpuctk.fileio",
    ),
    "runtime": (  # a warm `create` in cdi, jit-cdi or legacy mode
        "gpuctk.runtime.frontend",
        "gpuctk.runtime.main",
        "gpuctk.config.load",
        "gpuctk.runtime.log",
        "gpuctk.oci.args",
        "gpuctk.runtime.lowlevel",
        "gpuctk._cachefile",
        "gpuctk.oci.spec",
        "gpuctk.fileio",
        "gpuctk._fastjson",
        "gpuctk.request.container",
        "gpuctk.runtime.host",
        "gpuctk.runtime.modify",
        "gpuctk.cdi.apply",
        "gpuctk.cdi.registry",
        "gpuctk.cdi.cache",
        "gpuctk.generate.hooks",
        "gpuctk.hooks.steps",
    ),
}

_importlib = sys.modules["_frozen_importlib"]
_Module = type(sys)
_external = sys.modules["_frozen_importlib_external"]


class _BundleLoader(_external.SourceFileLoader):  # type: ignore[name-defined]
    """A source loader (``__loader__`` still reads files and resources) whose code comes from
    the bundle: used for a bundled module imported while the bundle loads."""

    def __init__(self, fullname: str, path: str, code: object) -> None:
        super().__init__(fullname, path)
        self._code = code

    def get_code(self, fullname: str) -> object:
        return self._code


class _Finder:
    """On ``sys.meta_path`` only while :func:`load` runs: a bundled module that a module body
    imports before its turn comes from the bundle, not from the file system."""

    def __init__(self, specs: "dict[str, ModuleSpec]") -> None:
        self.specs = specs

    def find_spec(
        self, name: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        return self.specs.get(name)


def bundle_path(entry: str, package_dir: str | None = None) -> str:
    pkg = package_dir or os.path.dirname(os.path.abspath(__file__))
    return f"{pkg}/__pycache__/_preload-{entry}.{sys.implementation.cache_tag}.bin"


def load(entry: str) -> bool:
    """Execute ``entry``'s bundle into ``sys.modules``; False (and nothing loaded) when there
    is none or it is not exactly what the normal imports would run."""
    try:
        return _load(entry)
    except Exception:
        return False


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            (st.st_mode & 0o170000) != 0o100000
            or st.st_mode & 0o022
            or st.st_uid not in (0, os.geteuid())
            or st.st_size > SIZE_LIMIT
        ):
            return None
        chunks: list[bytes] = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def _load(entry: str) -> bool:
    import marshal

    pkg = os.path.dirname(os.path.abspath(__file__))
    data = _read(bundle_path(entry, pkg))
    if data is None:
        return False
    head, magic, tag, modules = marshal.loads(data)
    if head != FORMAT or magic != _external.MAGIC_NUMBER or tag != sys.implementation.cache_tag:
        return False
    prefix = pkg + "/"
    for _name, _is_pkg, src, size, mtime_ns, _code in modules:
        if not src.startswith(prefix):
            return False
        st = os.stat(src)
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    specs = {}
    for name, is_pkg, src, _size, _mtime, code in modules:
        if name in sys.modules:
            continue
        spec = _importlib.ModuleSpec(name, _BundleLoader(name, src, code), origin=src, is_package=is_pkg)
        spec.has_location = True
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(src)]
        specs[name] = spec
    finder = _Finder(specs)
    loaded = []
    sys.meta_path.insert(0, finder)
    try:
        for name, spec in specs.items():
            if name in sys.modules:  # imported by an earlier module body, through the finder
                continue
            # what module_from_spec sets, without its generic steps (__cached__ left unset)
            module = _Module(name)
            module.__file__ = spec.origin
            module.__loader__ = spec.loader
            module.__spec__ = spec
            if spec.submodule_search_locations is not None:
                module.__path__ = spec.submodule_search_locations
                module.__package__ = name
            else:
                module.__package__ = spec.parent
            sys.modules[name] = module
            loaded.append(name)
            exec(spec.loader._code, module.__dict__)
    except BaseException:
        for name in loaded + [n for n in specs if n in sys.modules and n not in loaded]:
            sys.modules.pop(name, None)
        raise
    finally:
        sys.meta_path.remove(finder)
    for name in specs:  # `import a.b` binds b on a, as the import system does
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and name in sys.modules:
            setattr(sys.modules[parent], child, sys.modules[name])
    return True
