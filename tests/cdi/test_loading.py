"""Spec-loading vectors after cncf-tags/container-device-interface ``pkg/cdi/spec_test.go``,
``pkg/cdi/cache_test.go`` (L1..L15) and the decoder's quirks."""

import json
import sys

import pytest

from gpuctk.cdi import CDIError, Spec, load_spec, parse_spec, validate_spec_dict

VALID_030 = """\
cdiVersion: "0.3.0"
kind: vendor.com/device
devices:
  - name: dev1
    containerEdits:
      env:
        - FOO=bar
"""


def problems_of(text, fmt="yaml"):
    from gpuctk.cdi.model import parse_document

    doc = parse_document(text, f"x.{fmt}", fmt)
    return validate_spec_dict(doc)  # type: ignore[arg-type]


def load_text(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return load_spec(str(p))


@pytest.mark.parametrize(
    ("label", "text", "message"),
    [
        ("L1 unknown field", "xyzzy: garbled\n", 'unknown field "xyzzy"'),
        ("L2 empty file", "", "no Spec data"),
        (
            "L3 no cdiVersion",
            "kind: vendor.com/device\ndevices: [{name: d, containerEdits: {env: [A=B]}}]\n",
            'invalid version ""',
        ),
        ("L4 version 0.0.0", VALID_030.replace('"0.3.0"', '"0.0.0"'), 'invalid version "0.0.0"'),
        ("L5 vendor", VALID_030.replace("vendor.com/device", "vendor.com-/device"), "invalid vendor"),
        ("L5 class", VALID_030.replace("vendor.com/device", "vendor.com/device="), "invalid class"),
        (
            "L5 no slash",
            VALID_030.replace("vendor.com/device", "vendor1.comdevice"),
            "invalid vendor. empty name",
        ),
        (
            "L6 no edits",
            'cdiVersion: "0.3.0"\nkind: vendor.com/device\ndevices: [{name: dev1}]\n',
            "invalid device, empty device edits",
        ),
        (
            "L7 duplicate device",
            VALID_030 + "  - name: dev1\n    containerEdits: {env: [A=B]}\n",
            'invalid spec, multiple device "dev1"',
        ),
        (
            "L8 no devices",
            'cdiVersion: "0.3.0"\nkind: vendor.com/device\ncontainerEdits: {env: [A=B]}\n',
            "invalid spec, no devices",
        ),
        (
            "L13 enableCMT",
            'cdiVersion: "0.7.0"\nkind: v.com/d\ndevices: [{name: d, containerEdits: '
            "{intelRdt: {enableCMT: true}}}]\n",
            'unknown field "enableCMT"',
        ),
        (
            "wrong type uid",
            VALID_030.replace("env:\n        - FOO=bar", "deviceNodes: [{path: /dev/x, uid: -1}]"),
            "uid: -1 out of range",
        ),
        (
            "wrong type major string",
            VALID_030.replace("env:\n        - FOO=bar", 'deviceNodes: [{path: /dev/x, major: "1"}]'),
            'major: expected an integer, got string "1"',
        ),
        (
            "wrong type major float",
            VALID_030.replace("env:\n        - FOO=bar", "deviceNodes: [{path: /dev/x, major: 1.5}]"),
            "major: expected an integer",
        ),
        (
            "env not a list",
            VALID_030.replace("env:\n        - FOO=bar", "env: FOO=bar"),
            "env: expected a list",
        ),
        (
            "devices not a list",
            'cdiVersion: "0.3.0"\nkind: v.com/d\ndevices: {name: x}\n',
            "devices: expected a list",
        ),
        ("document is a list", "- a\n- b\n", "expected a mapping, got list"),
        ("null struct entry", VALID_030.replace("env:\n        - FOO=bar", "deviceNodes: [~]"), "null entry"),
        (
            "relative device path",
            VALID_030.replace("env:\n        - FOO=bar", "deviceNodes: [{path: dev/x}]"),
            'device path "dev/x" is not absolute',
        ),
        (
            "relative mount path",
            VALID_030.replace("env:\n        - FOO=bar", "mounts: [{hostPath: /a, containerPath: a}]"),
            'container path "a" is not absolute',
        ),
        (
            "relative hook path",
            VALID_030.replace("env:\n        - FOO=bar", "hooks: [{hookName: prestart, path: bin/hook}]"),
            'path "bin/hook" is not absolute',
        ),
    ],
)
def test_invalid_specs(tmp_path, label, text, message):
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, text)
    err = str(exc.value)
    assert message in err, err
    assert str(tmp_path / "spec.yaml") in err
    assert "\n" not in err


def test_l9_valid_030(tmp_path):
    s = load_text(tmp_path, VALID_030)
    assert (s.vendor, s.device_class, s.kind, s.version) == (
        "vendor.com",
        "device",
        "vendor.com/device",
        "0.3.0",
    )
    assert [d.name for d in s.devices] == ["dev1"]
    assert s.devices[0].container_edits == {"env": ["FOO=bar"]}
    assert s.devices[0].qualified_name == "vendor.com/device=dev1"
    assert s.source == str(tmp_path / "spec.yaml")


def test_l10_tmpfs_mount(tmp_path):
    s = load_text(
        tmp_path,
        'cdiVersion: "0.4.0"\nkind: vendor.com/device\ndevices:\n- name: dev1\n'
        "  containerEdits:\n    mounts:\n    - hostPath: tmpfs\n      containerPath: /tmp/data\n"
        "      type: tmpfs\n      options: [ro, mode=755, size=65536k]\n",
    )
    assert s.devices[0].container_edits["mounts"][0]["type"] == "tmpfs"


def test_l11_null_container_edits(tmp_path):
    s = load_text(tmp_path, VALID_030 + "containerEdits:\n")
    assert s.container_edits == {}


def test_l12_case_insensitive_keys(tmp_path):
    s = load_text(
        tmp_path,
        VALID_030.replace("kind:", "Kind:")
        .replace("env:\n        - FOO=bar", "additionalGIDs: [5]")
        .replace('"0.3.0"', '"0.7.0"'),
    )
    assert s.kind == "vendor.com/device"
    assert s.devices[0].container_edits == {"additionalGids": [5]}
    assert s.to_dict()["kind"] == "vendor.com/device"


def test_case_variants_of_one_key_are_duplicates():
    assert any("duplicate field" in p for p in problems_of(VALID_030 + "Kind: other.com/device\n"))


def test_l14_json_duplicate_key(tmp_path):
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, '{"cdiVersion": "0.3.0", "kind": "a/b", "kind": "c/d", "devices": []}', "s.json")
    assert 'duplicate key "kind"' in str(exc.value)


def test_yaml_duplicate_key(tmp_path):
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, VALID_030 + "kind: other.com/x\n")
    assert 'duplicate key "kind"' in str(exc.value)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("0666", 438),
        ("0o666", 438),
        ("0x1b6", 438),
        ("438", 438),
        ("0b110110110", 438),
        ("4_38", 438),
        ("438.0", 438),
    ],
)
def test_l15_integer_forms(tmp_path, yaml_value, expected):
    s = load_text(
        tmp_path,
        VALID_030.replace(
            "env:\n        - FOO=bar", f"deviceNodes: [{{path: /dev/x, fileMode: {yaml_value}}}]"
        ),
    )
    assert s.devices[0].container_edits["deviceNodes"][0]["fileMode"] == expected


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("123", "123"),
        ("yes", "true"),
        ("y", "true"),
        ("off", "false"),
        ("1.5", "1.5"),
        ("1:30", "1:30"),
        ("0x10", "16"),
        ("0666", "438"),
        ("1e6", "1e+06"),
        ("100000.0", "100000"),
        ("0.1", "0.1"),
        ("2001-12-14", "2001-12-14"),
        ('"007"', "007"),
        ("~", ""),
        (".inf", "+Inf"),
        ("3.14159265358979", "3.1415927"),
        ("100000000000000000000", "1e+20"),  # past uint64: a float, as go-yaml's ParseFloat
        # past CPython's 4300-digit int limit (and float's range): go-yaml keeps the string
        pytest.param("1" * 5000, "1" * 5000, id="5000-digits"),
    ],
)
def test_scalars_coerced_to_strings(tmp_path, yaml_value, expected):
    s = load_text(
        tmp_path,
        VALID_030.replace(
            "env:\n        - FOO=bar",
            f"env: [A=1]\n      hooks: [{{hookName: prestart, path: /h, args: [{yaml_value}]}}]",
        ),
    )
    assert s.devices[0].container_edits["hooks"][0]["args"] == [expected]


def test_json_scalars_coerced_like_yaml():
    doc = {
        "cdiVersion": "0.5.0",
        "kind": "vendor.com/device",
        "devices": [{"name": 7, "containerEdits": {"env": ["A=1"]}}],
    }
    s = Spec.from_dict(doc)
    assert s.devices[0].name == "7"


def test_json_and_yaml_equal(tmp_path):
    y = load_text(tmp_path, VALID_030)
    j = load_text(tmp_path, json.dumps(y.to_dict()), "s.json")
    assert y.to_dict() == j.to_dict()


def test_all_fields_round_trip_model():
    doc = {
        "cdiVersion": "1.1.0",
        "kind": "vendor.com/device",
        "annotations": {"a": "b"},
        "containerEdits": {
            "env": ["G=1"],
            "intelRdt": {"closID": "c", "schemata": [], "enableMonitoring": True},
        },
        "devices": [
            {
                "name": "d",
                "annotations": {"k": "v"},
                "containerEdits": {
                    "env": ["A=1"],
                    "deviceNodes": [
                        {
                            "path": "/dev/a",
                            "hostPath": "/dev/b",
                            "type": "c",
                            "major": 1,
                            "minor": 2,
                            "fileMode": 0,
                            "permissions": "rw",
                            "uid": 0,
                            "gid": 0,
                        }
                    ],
                    "netDevices": [{"hostInterfaceName": "eno1", "name": "n0"}],
                    "hooks": [
                        {
                            "hookName": "createContainer",
                            "path": "/h",
                            "args": ["h"],
                            "env": ["E=1"],
                            "timeout": 0,
                        }
                    ],
                    "mounts": [{"hostPath": "/a", "containerPath": "/b", "options": ["ro"], "type": "bind"}],
                    "intelRdt": {"l3CacheSchema": "L3", "memBwSchema": "MB"},
                    "additionalGids": [0, 5],
                },
            }
        ],
    }
    assert Spec.from_dict(doc).to_dict() == doc  # pointers given as 0 and schemata [] are kept


def test_yaml_guards(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh")
    )
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, bomb)
    assert "alias expansion" in str(exc.value)
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, "a: [1\n")
    assert "YAML" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CDIError) as exc:
        load_text(tmp_path, VALID_030 + "---\nfoo: bar\n")
    assert "more than one document" in str(exc.value)


def test_yaml_merge_keys(tmp_path):
    s = load_text(
        tmp_path,
        'cdiVersion: "0.3.0"\nkind: vendor.com/device\nx-base: &base\n  env: [A=1]\n'.replace(
            "x-base: &base\n  env: [A=1]\n", ""
        )
        + "devices:\n- name: d\n  containerEdits: &e\n    env: [A=1]\n"
        "- name: e\n  containerEdits:\n    <<: *e\n    mounts: [{hostPath: /a, containerPath: /a}]\n",
    )
    assert s.devices[1].container_edits["env"] == ["A=1"]


def test_parse_spec_sniffs_format():
    y = parse_spec(VALID_030)
    j = parse_spec(json.dumps(y.to_dict()))
    assert y.to_dict() == j.to_dict()
    assert "yaml" in sys.modules  # YAML text needed PyYAML


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"cdiVersion": NaN}', "invalid JSON number NaN"),
        ('{"cdiVersion": "0.3.0",}', "JSON:"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
)
def test_malformed_json(tmp_path, text, message):
    p = tmp_path / "s.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CDIError) as exc:
        load_spec(str(p))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_all_problems_reported():
    doc = {
        "cdiVersion": "0.3.0",
        "kind": "vendor.com/device",
        "devices": [{"name": "d", "containerEdits": {"env": ["FOO", "=x"], "deviceNodes": [{"path": ""}]}}],
    }
    assert validate_spec_dict(doc) == [
        'devices[0].containerEdits.env[0]: invalid environment variable "FOO"',
        'devices[0].containerEdits.env[1]: invalid environment variable "=x"',
        "devices[0].containerEdits.deviceNodes[0].path: invalid (empty) device path",
    ]
    with pytest.raises(CDIError) as exc:
        Spec.from_dict(doc, source="mem")
    assert exc.value.problems == validate_spec_dict(doc)
    assert "(and 2 more problems)" in str(exc.value)
