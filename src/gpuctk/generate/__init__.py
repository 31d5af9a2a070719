"""CDI spec generation from a discovered (or simulated) node.

Public surface: :class:`GenerateOptions` and :func:`generate_spec`. The JIT path used by
the runtime shim is :func:`gpuctk.generate.jit.jit_spec`. Attributes load lazily so that
``import gpuctk.generate.jit`` stays cheap on the shim's create path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs the shim's create path
if TYPE_CHECKING:
    from typing import Any

    from gpuctk.generate.options import GenerateOptions

__all__ = ["GenerateOptions", "generate_spec"]


def generate_spec(opts: GenerateOptions) -> tuple[dict[str, Any], list[str]]:
    """Return ``(cdi_spec_dict, warnings)``; raises GpuctkError on failure (one line: control
    characters in names taken from the command line or the node are escaped)."""
    from gpuctk.cdi.errors import escape
    from gpuctk.errors import GpuctkError
    from gpuctk.generate.build import build_spec

    try:
        spec, warnings = build_spec(opts)
    except GpuctkError as exc:
        message = str(exc)
        if escape(message) != message:
            exc.args = (escape(message),)
        raise
    return spec, [escape(w) for w in warnings]


def __getattr__(name: str) -> Any:
    if name == "GenerateOptions":
        from gpuctk.generate.options import GenerateOptions

        return GenerateOptions
    raise AttributeError(f"module 'gpuctk.generate' has no attribute {name!r}")
