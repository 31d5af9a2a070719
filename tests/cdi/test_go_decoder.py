"""`cdi validate` is the gate before Go consumers: what go-yaml v2 (through sigs.k8s.io/yaml,
for JSON specs too) rejects is rejected; messages escape control characters."""

from __future__ import annotations

import subprocess

import pytest

from gpuctk.cdi import CDIError
from gpuctk.cdi.model import parse_document
from support.tools import venv_script

HEAD = 'cdiVersion: "0.5.0"\nkind: acme.io/gpu\ndevices:\n  - name: "0"\n    containerEdits:\n      env: '


@pytest.mark.parametrize(
    "fmt, text, error",
    [
        ("yaml", "%YAML 1.2\n---\n" + HEAD + "[A=1]\n", "found incompatible YAML document"),
        ("yaml", "%YAML 1.0\n---\n" + HEAD + "[A=1]\n", "found incompatible YAML document"),
        ("yaml", HEAD + '["A=\\/x"]\n', "found unknown escape character '/'"),
        ("yaml", HEAD + '["A=\\ud800"]\n', "invalid Unicode character escape code"),
        ("json", '{"kind": "acme.io/gpu", "x": "\\/"}', "found unknown escape character '/'"),
        ("json", '{"kind": "\\udc00"}', "invalid Unicode character escape code \\udc00"),
        ("json", '{"kind": "\\ud83d\\ude00"}', "invalid Unicode character escape code \\ud83d"),
        ("json", '{"kind": "a\x85\x9fb"}', "control characters are not allowed (U+009F)"),
        ("json", '{"kind": "a\ufffe"}', "control characters are not allowed (U+FFFE)"),
    ],
    ids=[
        "yaml-1.2-directive",
        "yaml-1.0-directive",
        "yaml-slash-escape",
        "yaml-surrogate-escape",
        "json-slash-escape",
        "json-lone-surrogate",
        "json-surrogate-pair",
        "json-raw-c1",
        "json-raw-fffe",
    ],
)
def test_what_go_rejects_is_rejected(fmt, text, error):
    with pytest.raises(CDIError) as exc:
        parse_document(text, f"x.{fmt}", fmt)
    assert error in str(exc.value)


@pytest.mark.parametrize(
    "fmt, text, value",
    [
        ("yaml", "%YAML 1.1\n---\nkind: x\n", {"kind": "x"}),
        ("yaml", "kind: 'a\\/b'\n", {"kind": "a\\/b"}),  # no escapes in single quotes
        ("yaml", "kind: a\\/b\n", {"kind": "a\\/b"}),  # nor in plain scalars
        ("json", '{"kind": "a\\\\/b"}', {"kind": "a\\/b"}),  # an escaped backslash, then /
        ("json", '{"kind": "\\u00e9\\u0085"}', {"kind": "\u00e9\u0085"}),
        ("json", '{"kind": "\U0001f600\x85"}', {"kind": "\U0001f600\x85"}),  # raw astral, raw NEL
    ],
)
def test_what_go_accepts_is_accepted(fmt, text, value):
    assert parse_document(text, f"x.{fmt}", fmt) == value


def test_validate_cli_rejects_and_messages_stay_on_one_line(tmp_path):
    a = tmp_path / "slash.json"
    a.write_text('{"cdiVersion": "0.5.0", "kind": "acme.io\\/gpu", "devices": []}')
    b = tmp_path / "newline.json"
    b.write_text(
        '{"cdiVersion": "0.5.0", "kind": "\\nacme.io/gpu", '
        '"devices": [{"name": "0", "containerEdits": {"env": ["A=1"]}}]}'
    )
    res = subprocess.run(
        [venv_script("gpuctk"), "cdi", "validate", str(a), str(b)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    assert lines[0].startswith(f"{a}: JSON: found unknown escape character '/'")
    assert lines[1].startswith(f"{b}: kind: ") and '"\\nacme.io' in lines[1]


def test_cdi_error_messages_escape_control_characters():
    err = CDIError('invalid vendor "\nacme.io"\x00', problems=["kind: \x1b[31m"])
    assert str(err) == 'invalid vendor "\\nacme.io"\\x00' and err.problems == ["kind: \\x1b[31m"]
