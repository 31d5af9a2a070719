"""Edits-validation vectors after cncf-tags/container-device-interface ``pkg/cdi/container-edits_test.go``."""

import pytest

from gpuctk.cdi import validate_spec_dict

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]

VALID = [
    {"env": ["BAR=BARVALUE1"]},
    {"deviceNodes": [{"path": "/dev/null"}]},
    {"deviceNodes": [{"path": "/dev/null", "type": "c"}]},
    {"deviceNodes": [{"path": "/dev/x", "type": "b", "permissions": "rwm"}]},
    {"deviceNodes": [{"path": "/dev/x", "type": "b", "permissions": "none"}]},
    {"deviceNodes": [{"path": "/dev/x", "permissions": "mwr"}]},
    {"deviceNodes": [{"path": "/dev/x", "type": "u"}, {"path": "/dev/y", "type": "p"}]},
    {"mounts": [{"hostPath": "/dev/vendorctl", "containerPath": "/dev/vendorctl"}]},
    {"hooks": [{"hookName": h, "path": "/usr/bin/hook", "args": ["a", "b"], "env": ["X=1"]} for h in HOOKS]},
    {"hooks": [{"hookName": "prestart", "path": "/h", "timeout": -5}]},
    {"intelRdt": {"closID": "foo.bar"}},
    {"intelRdt": {"closID": "/"}},
    {"netDevices": [{"hostInterfaceName": "eno1", "name": "netdev0"}]},
    {"env": ["A="]},
    {"env": ["A=B=C"]},
    {"additionalGids": [0, 1]},
]

INVALID = [
    ({"env": [""]}, 'invalid environment variable ""'),
    ({"env": ["=foo"]}, 'invalid environment variable "=foo"'),
    ({"env": ["FOOBAR"]}, 'invalid environment variable "FOOBAR"'),
    ({"deviceNodes": [{"path": ""}]}, "invalid (empty) device path"),
    ({"deviceNodes": [{"path": "/dev/x", "type": "f"}]}, 'device "/dev/x": invalid type "f"'),
    ({"deviceNodes": [{"path": "/dev/x", "permissions": "to land"}]}, 'invalid permissions "to land"'),
    ({"mounts": [{"hostPath": "", "containerPath": "/a"}]}, "invalid mount, empty host path"),
    ({"mounts": [{"hostPath": "/a", "containerPath": ""}]}, "invalid mount, empty container path"),
    ({"hooks": [{"hookName": "prestart"}]}, 'invalid hook "prestart" with empty path'),
    ({"hooks": [{"hookName": "misCreateRuntime", "path": "/h"}]}, 'invalid hook name "misCreateRuntime"'),
    (
        {"hooks": [{"hookName": "prestart", "path": "/h", "env": ["=value2"]}]},
        'invalid hook "prestart": invalid environment variable "=value2"',
    ),
    ({"intelRdt": {"closID": "foo/bar"}}, "invalid ClosID"),
    ({"intelRdt": {"closID": "."}}, "invalid ClosID"),
    ({"intelRdt": {"closID": ".."}}, "invalid ClosID"),
    ({"intelRdt": {"closID": "foo\nbar"}}, "invalid ClosID"),
    ({"intelRdt": {"closID": "a" * 4096}}, "invalid ClosID"),
    ({"netDevices": [{"hostInterfaceName": "", "name": "n"}]}, "empty HostInterfaceName"),
    ({"netDevices": [{"hostInterfaceName": "h", "name": ""}]}, "empty Name"),
    (
        {
            "netDevices": [
                {"hostInterfaceName": "eno1", "name": "a"},
                {"hostInterfaceName": "eno1", "name": "b"},
            ]
        },
        'duplicate HostInterfaceName "eno1"',
    ),
    (
        {"netDevices": [{"hostInterfaceName": "e1", "name": "a"}, {"hostInterfaceName": "e2", "name": "a"}]},
        'duplicate Name "a"',
    ),
]


def doc(edits, name="dev"):
    return {
        "cdiVersion": "1.1.0",
        "kind": "vendor.com/device",
        "devices": [{"name": name, "containerEdits": edits}],
    }


@pytest.mark.parametrize("edits", VALID)
def test_valid_edits(edits):
    assert validate_spec_dict(doc(edits)) == []
    assert validate_spec_dict({**doc({"env": ["A=1"]}), "containerEdits": edits}) == []


@pytest.mark.parametrize(("edits", "message"), INVALID)
def test_invalid_edits(edits, message):
    problems = validate_spec_dict(doc(edits))
    assert len(problems) == 1, problems
    assert problems[0].startswith("devices[0].containerEdits.")
    assert message in problems[0]
    problems = validate_spec_dict({**doc({"env": ["A=1"]}), "containerEdits": edits})
    assert len(problems) == 1 and problems[0].startswith("containerEdits.") and message in problems[0]


def test_invalid_device_name():
    assert validate_spec_dict(doc({"env": ["A=1"]}, name="a dev ice")) == [
        "devices[0].name: invalid character ' ' in device name \"a dev ice\""
    ]


@pytest.mark.parametrize(
    ("annotations", "ok"),
    [
        ({"example.com/key": "v"}, True),
        ({"key": ""}, True),
        ({"Example.COM/Key_1.x": "v"}, True),  # lower-cased before the check, like upstream
        ({"-bad": "v"}, False),
        ({"a/b/c": "v"}, False),
        ({"/x": "v"}, False),
        ({"bad_prefix!/x": "v"}, False),
        ({"k" * 64: "v"}, False),
        ({"k": "v" * (256 * 1024)}, False),
    ],
)
def test_annotation_keys(annotations, ok):
    d = doc({"env": ["A=1"]})
    d["annotations"] = annotations
    assert (validate_spec_dict(d) == []) is ok
    d = doc({"env": ["A=1"]})
    d["devices"][0]["annotations"] = annotations
    assert (validate_spec_dict(d) == []) is ok
