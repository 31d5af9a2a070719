"""The argv encoding of ``gpuctk-hook run-steps``: several hook steps in one process.

A spec that gpuctk generates for its own hook executable runs the createContainer steps
(create-symlinks, enable-cuda-compat, update-ldcache, …) as one process instead of one
process each. The steps ride in argv, each prefixed by its length in words::

    gpuctk-hook [GLOBAL FLAGS] run-steps N1 NAME1 ARG… N2 NAME2 ARG… …

``N`` is a decimal count of the words of that step, its name included (``1`` for a step
without flags). The encoding is unambiguous for any word (a value that is ``--``, a number,
or another hook's name is just a word inside some step's count) and survives word-wise
rewrites such as ``cdi transform root``. :func:`encode` and :func:`decode` are exact
inverses; tests prove that the steps of a generated combined hook expand to exactly the
per-step argv list of the upstream shape.

Stdlib only, no ``re``/``json``: this runs on every container start.
"""

from __future__ import annotations

SUBCOMMAND = "run-steps"
MAX_STEPS = 64  # a generated spec has at most ~10; the cap bounds the work an argv can ask for
MAX_WORDS = 100_000


class StepsError(ValueError):
    """The argv of ``run-steps`` is not a well-formed step list."""


def encode(steps: list[list[str]]) -> list[str]:
    """``[[name, arg…], …]`` -> the words after ``run-steps``."""
    out: list[str] = []
    for step in steps:
        if not step or not step[0]:
            raise StepsError("a step needs a name")
        out.append(str(len(step)))
        out.extend(step)
    return out


def decode(words: list[str]) -> list[list[str]]:
    """The words after ``run-steps`` -> ``[[name, arg…], …]``; :class:`StepsError` when a
    count is not a positive decimal, overruns the argv, or there are no steps."""
    if len(words) > MAX_WORDS:
        raise StepsError(f"more than {MAX_WORDS} words")
    steps: list[list[str]] = []
    i = 0
    while i < len(words):
        count = words[i]
        if not (count.isascii() and count.isdigit()) or count.startswith("0") or len(count) > 6:
            raise StepsError(f"word {i + 1}: expected the word count of a step, got {count!r}")
        n = int(count)
        if i + 1 + n > len(words):
            raise StepsError(f"word {i + 1}: step of {n} words overruns the argument list")
        steps.append(words[i + 1 : i + 1 + n])
        if len(steps) > MAX_STEPS:
            raise StepsError(f"more than {MAX_STEPS} steps")
        i += 1 + n
    if not steps:
        raise StepsError("no steps given")
    return steps
