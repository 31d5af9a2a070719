"""gVisor (runsc + nvproxy): check OCI specs, and make CDI/OCI specs runsc-ready.

The interface other areas import (documented in docs/gvisor.md):

* ``check_spec(oci_spec, driver_version=None) -> list[Finding]`` (``analyze`` gives the full ``Report``);
* ``runsc_ready_cdi_spec(cdi_spec) -> (spec, warnings)`` for ``gpuctk cdi generate --sandbox gvisor``;
* ``runsc_ready_oci_spec(oci_spec) -> warnings`` (in place) for the shim's ``sandbox = "gvisor"``.

Stdlib-only. The shim imports this on its ``create`` path, so the checker (dataclasses and all) is
imported only when one of its names is used.
"""

from __future__ import annotations

from gpuctk.sandbox.contract import load_driver_table
from gpuctk.sandbox.ready import runsc_ready_cdi_spec, runsc_ready_oci_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from gpuctk.sandbox.check import Finding, Report

__all__ = [
    "Finding",
    "Report",
    "analyze",
    "check_spec",
    "load_driver_table",
    "runsc_ready_cdi_spec",
    "runsc_ready_oci_spec",
]


def check_spec(oci_spec: dict, driver_version: str | None = None, **kwargs) -> list[Finding]:
    """One Finding (rule, status "pass"|"warn"|"fail", reason, fix) per applicable rule of A.8."""
    from gpuctk.sandbox.check import check_spec as _check_spec

    return _check_spec(oci_spec, driver_version, **kwargs)


def analyze(oci_spec: dict, driver_version: str | None = None, **kwargs) -> Report:
    """The full report: flow, GPU detection, whether runsc runs nvidia-container-cli, findings."""
    from gpuctk.sandbox.check import analyze as _analyze

    return _analyze(oci_spec, driver_version, **kwargs)


def __getattr__(name: str) -> object:
    if name in ("Finding", "Report"):
        from gpuctk.sandbox import check

        return getattr(check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
