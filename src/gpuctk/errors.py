"""Errors that reach the user as one line, with a documented exit code.

Exit codes (shared by every gpuctk command):
  0  success
  1  invalid input, unresolvable devices, a failed check, a failed operation
  2  usage error (bad flags)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class GpuctkError(Exception):
    """A user-facing error: printed as one line, never with a traceback."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(GpuctkError):
    exit_code = EXIT_USAGE
