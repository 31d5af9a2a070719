"""Errors raised by the CDI library (stdlib only)."""

from __future__ import annotations

from gpuctk.errors import GpuctkError


class CDIError(GpuctkError):
    """Invalid CDI spec, unreadable spec file, or a failed edit.

    ``problems`` holds every ``field: message`` found when the error comes from
    validation (the message itself shows the first one).
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems or [])


class UnresolvableDevicesError(CDIError):
    """Some requested device names are not defined by any loaded spec."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("unresolvable CDI devices " + ", ".join(names))
        self.names = list(names)
