"""One spec loader: doctor/snapshot and `cdi transform` read specs through gpuctk.cdi, so they
accept exactly what the runtime accepts (size cap, alias guard, go-yaml scalars, .json/.yaml)."""

from __future__ import annotations

import os
import subprocess

import pytest

from gpuctk.cdi.model import MAX_SPEC_SIZE
from gpuctk.snapshot.cdispecs import check_specs
from support.tools import require_root, venv_script

GOOD = """cdiVersion: "0.5.0"
kind: acme.io/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/null
          major: {major}
"""


def _doctor(tmp_path, name, text):
    d = tmp_path / "etc" / "cdi"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return {os.path.basename(e["path"]): e for e in check_specs(str(tmp_path), ["/etc/cdi"])}


def test_doctor_accepts_what_the_runtime_accepts(tmp_path):
    entry = _doctor(tmp_path, "good.yaml", GOOD.format(major=1))["good.yaml"]
    assert entry["valid"] is True and entry["devices"] == ["0"] and entry["kind"] == "acme.io/gpu"


def test_doctor_reads_yaml_1_1_sexagesimal_as_the_runtime_does(tmp_path):
    # PyYAML's safe_load reads 1:30 as 90; go-yaml v2 (and the runtime) as a string
    entry = _doctor(tmp_path, "s.yaml", GOOD.format(major="1:30"))["s.yaml"]
    assert entry["valid"] is False
    assert any("major" in e and "expected an integer" in e for e in entry["errors"])


def test_doctor_skips_yml_like_the_runtime(tmp_path):
    assert _doctor(tmp_path, "spec.yml", GOOD.format(major=1)) == {}


def test_doctor_rejects_alias_bombs_and_huge_specs(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    entries = _doctor(tmp_path, "bomb.yaml", bomb)
    assert entries["bomb.yaml"]["valid"] is False
    assert "alias expansion" in entries["bomb.yaml"]["errors"][0]
    entries = _doctor(tmp_path, "huge.json", " " * (MAX_SPEC_SIZE + 1))
    assert "limit" in entries["huge.json"]["errors"][0]


def test_doctor_does_not_block_on_a_fifo(tmp_path):
    d = tmp_path / "etc" / "cdi"
    d.mkdir(parents=True)
    os.mkfifo(d / "fifo.yaml")
    entry = check_specs(str(tmp_path), ["/etc/cdi"])[0]
    assert entry["valid"] is False and "not a regular file" in entry["errors"][0]


def _fifo(p):
    os.mkfifo(p / "f.yaml")
    return str(p / "f.yaml")


def _transform(*args, stdin=None):
    return subprocess.run(
        [venv_script("gpuctk"), "cdi", "transform", "root", "--from", "/a", "--to", "/b", *args],
        capture_output=True,
        input=stdin,
        timeout=60,
    )


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: "/dev/zero", b'failed to read CDI Spec "/dev/zero": not a regular file'),
        (_fifo, b"not a regular file"),
        (
            lambda p: (
                (p / "bad.yaml").write_text("cdiVersion: 0.3.0\nkind: x/y\ndevices: []\n"),
                str(p / "bad.yaml"),
            )[1],
            b"no devices",
        ),
        (lambda p: ((p / "s.yaml").write_text(GOOD.format(major="1:30")), str(p / "s.yaml"))[1], b"major"),
    ],
    ids=["dev-zero", "fifo", "no-devices", "sexagesimal"],
)
def test_transform_bad_input_is_one_line(tmp_path, make, expect):
    res = _transform("--input", make(tmp_path))
    assert res.returncode == 1 and res.stdout == b""
    assert res.stderr.count(b"\n") == 1 and expect in res.stderr, res.stderr


def test_transform_stdin_is_bounded():
    res = _transform(stdin=b"\0" * (MAX_SPEC_SIZE + 10))
    assert res.returncode == 1 and b"limit" in res.stderr and res.stderr.count(b"\n") == 1


def test_transform_reads_through_the_loader(tmp_path):
    (tmp_path / "s.yaml").write_text(GOOD.format(major="0x1").replace("/dev/null", "/a/dev/null"))
    res = _transform("--input", str(tmp_path / "s.yaml"), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert b'"hostPath": "/b/dev/null"' in res.stdout and b'"major": 1' in res.stdout


def test_doctor_checks_trust_below_the_host_root_only(tmp_path):
    """A host root copied somewhere a user owns is judged by what lies below it."""
    require_root()
    host = tmp_path / "copy"
    (host / "etc" / "cdi").mkdir(parents=True)
    os.chown(tmp_path, 1000, 1000)
    (host / "etc" / "cdi" / "a.yaml").write_text(GOOD.format(major=1))
    (entry,) = check_specs(str(host), ["/etc/cdi"])
    assert entry["valid"] is True, entry
    os.chmod(host / "etc" / "cdi", 0o777)
    (entry,) = check_specs(str(host), ["/etc/cdi"])
    assert entry["valid"] is False and "not used by the runtime running as root" in entry["errors"][0]
