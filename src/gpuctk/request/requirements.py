"""``NVIDIA_REQUIRE_*`` constraints: grammar and evaluation (NVIDIA/nvidia-container-toolkit
`internal/requirements/`, `internal/config/image/cuda_image.go`).

Each requirement string is a space-separated OR of terms; each term is a comma-separated
AND of factors ``<property><op><value>``. Properties ``cuda``, ``driver`` and ``arch`` compare
as versions, ``brand`` as a string; an unknown property is skipped. Every requirement string
must hold. Stdlib only.
"""

from __future__ import annotations

from gpuctk.errors import GpuctkError

OPERATORS = ("!=", "<=", ">=", "=", "<", ">")  # tried in this order, so "<=" wins over "<"
VERSION_PROPERTIES = ("cuda", "driver", "arch")
STRING_PROPERTIES = ("brand",)


class RequirementError(GpuctkError):
    """A requirement is malformed or not satisfied."""


class _FactorError(Exception):
    pass


def parse_version(value: str) -> tuple[int, int, int]:
    """A lenient semantic version: optional ``v``, 1 to 3 numeric parts (``11.6`` → (11, 6, 0))."""
    v = value.strip()
    if v.startswith("v"):
        v = v[1:]
    parts = v.split(".")
    if not v or len(parts) > 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"invalid version {value!r}")
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return nums[0], nums[1], nums[2]


def parse_factor(factor: str) -> tuple[str, str, str]:
    """``"cuda>=11.6"`` → ``("cuda", ">=", "11.6")``; RequirementError if there is no operator."""
    for op in OPERATORS:
        if op in factor:
            prop, _, value = factor.partition(op)
            return prop.strip().lower(), op, value.strip()
    raise RequirementError(f"invalid constraint {factor!r}: no comparison operator")


def parse_requirement(expr: str) -> list[list[tuple[str, str, str]]]:
    """OR-list of AND-lists of factors."""
    return [[parse_factor(f) for f in term.split(",") if f.strip()] for term in expr.split() if term.strip()]


def _compare(a: object, op: str, b: object) -> bool:
    if op == "!=":
        return a != b
    if op == "=":
        return a == b
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    if op == "<":
        return a < b  # type: ignore[operator]
    return a > b  # type: ignore[operator]


def _eval_factor(prop: str, op: str, value: str, properties: dict[str, str | None]) -> bool:
    if prop in VERSION_PROPERTIES:
        have = properties.get(prop) or ""
        try:
            want_v = parse_version(value)
        except ValueError:
            raise _FactorError(f"invalid version {value!r} for {prop}") from None
        try:
            have_v = parse_version(have)
        except ValueError:
            raise _FactorError(f"{prop} version unknown") from None
        return _compare(have_v, op, want_v)
    if prop in STRING_PROPERTIES:
        return _compare((properties.get(prop) or "").lower(), op, value.lower())
    return True  # unknown property: skipped, like upstream


def check_requirements(requirements: list[str], properties: dict[str, str | None]) -> None:
    """Raise RequirementError naming the first requirement that does not hold.

    ``properties``: ``cuda`` (driver's CUDA version, ``major.minor``), ``driver``, ``arch``
    (compute capability), ``brand``; a missing version makes a factor on it fail.
    """
    for expr in requirements:
        terms = parse_requirement(expr)
        if not terms:
            continue
        failure = ""
        for term in terms:
            ok = True
            for prop, op, value in term:
                try:
                    if _eval_factor(prop, op, value, properties):
                        continue
                    failure = failure or f"{prop}{op}{value} ({prop}={properties.get(prop) or ''})"
                except _FactorError as exc:
                    failure = failure or f"{prop}{op}{value} ({exc})"
                ok = False
                break
            if ok:
                break
        else:
            raise RequirementError(f"unsatisfied condition: {expr} [{failure}]")
