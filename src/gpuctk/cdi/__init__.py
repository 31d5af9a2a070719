"""Container Device Interface (CDI) library, behaving like the reference Go library
(``tags.cncf.io/container-device-interface``, master semantics). See docs/cdi.md.

Stdlib-only on import and for JSON specs; PyYAML is imported only when a YAML spec is
read or written.
"""

from gpuctk.cdi.errors import CDIError, UnresolvableDevicesError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from gpuctk.cdi import annotations, names
    from gpuctk.cdi.apply import apply_edits, merge_edits
    from gpuctk.cdi.model import MAX_SPEC_SIZE, Device, Spec, load_spec, parse_spec, validate_spec_dict
    from gpuctk.cdi.registry import DEFAULT_SPEC_DIRS, Registry
    from gpuctk.cdi.version import CURRENT_VERSION
    from gpuctk.cdi.write import minimum_version, write_spec

# public name -> submodule defining it. Loaded on first use (PEP 562), so that importing one
# piece (the runtime shim needs Registry) does not import the writer, the annotation helpers…
_LAZY = {
    "annotations": "annotations",
    "names": "names",
    "merge_edits": "apply",
    "apply_edits": "apply",
    "MAX_SPEC_SIZE": "model",
    "Device": "model",
    "Spec": "model",
    "load_spec": "model",
    "parse_spec": "model",
    "validate_spec_dict": "model",
    "DEFAULT_SPEC_DIRS": "registry",
    "Registry": "registry",
    "CURRENT_VERSION": "version",
    "minimum_version": "write",
    "write_spec": "write",
}
# submodules, as attributes of the package (``gpuctk.cdi.model`` after ``import gpuctk.cdi``)
_LAZY.update(
    (m, m)
    for m in (
        "apply",
        "cache",
        "decode",
        "model",
        "registry",
        "scalars",
        "validate",
        "version",
        "write",
        "yamlio",
    )
)


def __getattr__(name: str) -> object:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'gpuctk.cdi' has no attribute {name!r}")
    module = __import__(f"gpuctk.cdi.{where}", fromlist=[name])
    value = module if name == where else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_SPEC_DIRS",
    "MAX_SPEC_SIZE",
    "CDIError",
    "Device",
    "Registry",
    "Spec",
    "UnresolvableDevicesError",
    "annotations",
    "apply_edits",
    "load_spec",
    "merge_edits",
    "minimum_version",
    "names",
    "parse_spec",
    "validate_spec_dict",
    "write_spec",
]
