"""Errors that reach the user as one line, with a documented exit code.

Exit codes (shared by every gpuctk command):
  0  success
  1  invalid input, unresolvable devices, a failed check, a failed operation
  2  usage error (bad flags)
  3  internal error (a bug in gpuctk): one line, GPUCTK_DEBUG=1 shows the traceback
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class GpuctkError(Exception):
    """A user-facing error: printed as one line, never with a traceback."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        # one line whatever the message quotes: a key or path holding a newline, NUL or ESC
        # (from a hostile file) is shown escaped
        if not message.isprintable():
            from gpuctk.fileio import escape_controls

            message = escape_controls(message)
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(GpuctkError):
    exit_code = EXIT_USAGE
