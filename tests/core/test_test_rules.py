"""Rules the test suite keeps about itself, checked by reading its sources.

- Every environment skip goes through `support.tools.missing()` (and the `require*` helpers built
  on it), which fails under CI=true: a raw ``pytest.skip``, ``importorskip``, ``skipif`` or skip
  mark anywhere else would let CI pass without proving the path.
- The golden-update flag is read in one place, `support.golden`, with one rule (exactly ``1``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from support import golden, tools

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(TESTS, "support", "tools.py")
GOLDEN = os.path.join(TESTS, "support", "golden.py")

# built from pieces so this file does not match itself
SKIP = re.compile(
    r"\b(pytest\.(skip|xfail)\s*\(|importor" r"skip|skip" r"if\b|mark\.(skip|xfail)\b|unittest\.skip)"
)
GOLDEN_READ = re.compile(r"(environ|getenv)[^\n]*GPUCTK_UPDATE_" r"GOLDEN")


def _sources() -> list[str]:
    out = []
    for d, dirs, files in os.walk(TESTS):
        dirs[:] = [x for x in dirs if x not in ("__pycache__", "data")]
        out += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return sorted(out)


def _hits(pattern: re.Pattern[str], allowed: str) -> list[str]:
    hits = []
    for path in _sources():
        if path in (allowed, os.path.abspath(__file__)):
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if pattern.search(line):
                    hits.append(f"{os.path.relpath(path, TESTS)}:{n}: {line.strip()}")
    return hits


def test_every_skip_goes_through_the_helper():
    assert _hits(SKIP, TOOLS) == [], "skip through support.tools.missing()/require() instead"


def test_the_golden_flag_is_read_only_in_support_golden():
    assert _hits(GOLDEN_READ, GOLDEN) == [], "use support.golden.UPDATE / check_golden()"


def test_the_scanner_sees_each_kind_of_skip(tmp_path):
    # the mutation this catches: a pattern that no longer matches one of the forms
    for line in (
        'pytest.skip("x")',
        "pytest.importor" + 'skip("yaml")',
        "@pytest.mark.skip" + "if(True, reason='x')",
        "@pytest.mark.skip(reason='x')",
        "pytestmark = pytest.mark.skip",
        "pytest.xfail('x')",
    ):
        assert SKIP.search(line), line
    assert not SKIP.search("missing('no runc')") and not SKIP.search("require(cond, 'why')")
    assert GOLDEN_READ.search('os.environ.get("GPUCTK_UPDATE_' + 'GOLDEN")')


def _run_in_env(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("CI", "GPUCTK_UPDATE_GOLDEN")} | env,
        cwd=TESTS,
        timeout=60,
    )


@pytest.mark.parametrize("value,update", [("1", True), ("0", False), ("true", False), ("", False)])
def test_golden_flag_is_exactly_one(value, update):
    p = _run_in_env("import support.golden as g; print(g.UPDATE)", GPUCTK_UPDATE_GOLDEN=value)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(update)


def test_check_golden_fails_on_a_missing_file_and_on_a_difference(tmp_path, monkeypatch):
    monkeypatch.setattr(golden, "UPDATE", False)
    path = str(tmp_path / "g.txt")
    with pytest.raises(AssertionError, match="no golden file"):
        golden.check_golden(path, "a\n")
    assert not os.path.exists(path)
    with open(path, "w") as f:
        f.write("a\n")
    golden.check_golden(path, "a\n")
    with pytest.raises(AssertionError, match="differs"):
        golden.check_golden(path, "b\n")
    monkeypatch.setattr(golden, "UPDATE", True)
    golden.check_golden(path, "b\n")
    with open(path) as f:
        assert f.read() == "b\n"


@pytest.mark.parametrize("ci,outcome", [("true", "failed"), ("", "skipped")])
def test_missing_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    test = tmp_path / "test_one.py"
    test.write_text(
        "from support.tools import require\n\ndef test_x():\n    require(False, 'no such tool')\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(test)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CI"} | {"CI": ci, "PYTHONPATH": TESTS},
        cwd=str(tmp_path),
        timeout=120,
    )
    assert f"1 {outcome}" in p.stdout, p.stdout + p.stderr
    if outcome == "failed":
        assert "required component missing under CI=true: no such tool" in p.stdout
    assert tools.IN_CI is (os.environ.get("CI", "").lower() in ("1", "true", "yes"))


def test_src_cites_upstream_not_the_reference_notes() -> None:
    """Code cites upstream by repository path (or the project's own docs), never sections of the
    research notes, which do not ship with the project."""
    src = os.path.join(os.path.dirname(TESTS), "src", "gpuctk")
    notes = re.compile(
        r"§|INTERFACES\.md|(nvidia-container-toolkit|k8s-gpu|cdi-spec|gvisor-and-python)" r"\.md"
    )
    hits = []
    for d, dirs, files in os.walk(src):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            path = os.path.join(d, f)
            with open(path, encoding="utf-8", errors="replace") as fh:
                hits += [f"{path}:{n}" for n, line in enumerate(fh, 1) if notes.search(line)]
    assert hits == [], hits
