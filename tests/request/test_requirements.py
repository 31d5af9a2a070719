"""NVIDIA_REQUIRE_* grammar and evaluation, upstream's `internal/requirements/` constraint cases restated."""

from __future__ import annotations

import pytest

from gpuctk.request.requirements import (
    RequirementError,
    check_requirements,
    parse_factor,
    parse_requirement,
    parse_version,
)

PROPS: dict[str, str | None] = {"cuda": "11.6", "driver": "470.57.02", "arch": "8.6", "brand": "tesla"}


@pytest.mark.parametrize(
    ("factor", "expected"),
    [
        ("cuda>=11.6", ("cuda", ">=", "11.6")),
        ("cuda<=11.6", ("cuda", "<=", "11.6")),
        ("cuda!=11.6", ("cuda", "!=", "11.6")),
        ("brand=tesla", ("brand", "=", "tesla")),
        ("arch<9", ("arch", "<", "9")),
        ("driver>418", ("driver", ">", "418")),
    ],
)
def test_parse_factor(factor, expected):
    assert parse_factor(factor) == expected


def test_parse_factor_without_operator():
    with pytest.raises(RequirementError, match="no comparison operator"):
        parse_factor("cuda11")


def test_or_of_ands():
    assert parse_requirement("cuda>=11.0,driver>=450 brand=tesla") == [
        [("cuda", ">=", "11.0"), ("driver", ">=", "450")],
        [("brand", "=", "tesla")],
    ]


@pytest.mark.parametrize(
    ("reqs", "ok"),
    [
        (["cuda>=11.6"], True),
        (["cuda>=11.7"], False),
        (["cuda>11.5"], True),
        (["cuda=11.6"], True),
        (["cuda=11.6.0"], True),
        (["cuda!=11.6"], False),
        (["cuda<12"], True),
        (["driver>=470"], True),
        (["driver>=470.57.03"], False),
        (["arch>=8.0,arch<9.0"], True),
        (["arch>=9.0"], False),
        (["brand=tesla"], True),
        (["brand=TESLA"], True),
        (["brand=geforce"], False),
        (["brand!=geforce"], True),
        (["brand=geforce brand=tesla"], True),  # OR
        (["cuda>=12.0 cuda>=11.0"], True),
        (["cuda>=11.0,brand=geforce"], False),  # AND
        (["cuda>=11.0", "brand=geforce"], False),  # all vars ANDed
        (["cuda>=11.0", "brand=tesla"], True),
        (["unknown>=1"], True),  # unknown property skipped
        (["cuda>=11.0,unknown=x"], True),
        ([], True),
    ],
)
def test_evaluation(reqs, ok):
    if ok:
        check_requirements(reqs, PROPS)
    else:
        with pytest.raises(RequirementError, match="unsatisfied condition"):
            check_requirements(reqs, PROPS)


def test_missing_driver_version_fails_its_term_but_not_other_terms():
    props: dict[str, str | None] = {"cuda": "11.4", "arch": "8.7"}  # CSV mode: no driver version
    with pytest.raises(RequirementError):
        check_requirements(["driver>=470"], props)
    check_requirements(["driver>=470 cuda>=11.0"], props)
    with pytest.raises(RequirementError):
        check_requirements(["cuda>=11.0,driver>=470"], props)


def test_failure_names_the_condition():
    with pytest.raises(RequirementError) as exc:
        check_requirements(["cuda>=12.2"], PROPS)
    assert "cuda>=12.2" in str(exc.value) and "cuda=11.6" in str(exc.value)


@pytest.mark.parametrize(
    ("v", "expected"), [("11", (11, 0, 0)), ("v11.6", (11, 6, 0)), ("470.57.02", (470, 57, 2))]
)
def test_parse_version(v, expected):
    assert parse_version(v) == expected


@pytest.mark.parametrize("v", ["", "x", "1.2.3.4", "1..2", "-1"])
def test_parse_version_invalid(v):
    with pytest.raises(ValueError):
        parse_version(v)
