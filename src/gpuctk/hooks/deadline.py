"""One wall-clock deadline for a whole hook run.

A hook runs as root while the runtime waits for it: an image that makes it block (a FIFO,
``/proc/kmsg``, a million-entry include tree) would hang container creation. So the hook arms
``ITIMER_REAL`` once at start; when it fires, :class:`HookDeadline` is raised wherever the hook
is (a blocking ``read``/``open``/``waitpid`` is interrupted), ``finally`` blocks unmount and
close what they hold, and the hook fails with one line. Child processes (ldconfig) get only
what is left of the same deadline.

The limit comes from argv (``gpuctk-hook --timeout SECONDS``), never from the environment,
and is clamped to [:data:`MIN_S`, :data:`MAX_S`].
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, milliseconds per hook start
import time

DEFAULT_S = 10.0
MIN_S = 0.5
MAX_S = 60.0

_deadline: float | None = None


class HookDeadline(BaseException):  # not an Exception: nothing may swallow it
    """The hook's deadline passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"deadline of {seconds:g}s exceeded")
        self.seconds = seconds


def clamp(seconds: float) -> float:
    if seconds != seconds:  # NaN
        return DEFAULT_S
    return min(max(seconds, MIN_S), MAX_S)


def parse(text: str) -> float:
    """``--timeout`` text -> seconds (clamped); ValueError for non-numbers."""
    value = float(text)
    if value != value:
        raise ValueError(text)
    return clamp(value)


def arm(seconds: float = DEFAULT_S) -> None:
    """Start the deadline (once per process)."""
    global _deadline
    seconds = clamp(seconds)
    _deadline = time.monotonic() + seconds

    def fire(_signum: int, _frame: object) -> None:
        disarm()
        raise HookDeadline(seconds)

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def remaining(default: float = DEFAULT_S) -> float:
    """Seconds left (at least a little, so a child gets a chance to fail cleanly)."""
    if _deadline is None:
        return default
    return max(_deadline - time.monotonic(), 0.05)
