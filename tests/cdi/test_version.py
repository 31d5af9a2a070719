"""Minimum-version vectors after cncf-tags/container-device-interface ``specs-go/version_test.go`` and
``pkg/cdi/spec_test.go`` (M1..M22) and ValidateVersion."""

import copy
from typing import Any

import pytest

from gpuctk.cdi import minimum_version, validate_spec_dict

BASE: dict[str, Any] = {
    "cdiVersion": "1.1.0",
    "kind": "example.com/class",
    "devices": [{"name": "dev", "containerEdits": {"env": ["A=B"]}}],
}


def spec(top_edits=None, dev_edits=None, **extra):
    s = copy.deepcopy(BASE)
    if top_edits is not None:
        s["containerEdits"] = top_edits
    if dev_edits is not None:
        s["devices"][0]["containerEdits"].update(dev_edits)
    for k, v in extra.items():
        if k == "device_annotations":
            s["devices"][0]["annotations"] = v
        elif k == "device_name":
            s["devices"][0]["name"] = v
        else:
            s[k] = v
    return s


MIN_VERSION = [
    ("M1 nothing", spec(), "0.3.0"),
    ("M2 mount type", spec({"mounts": [{"hostPath": "/a", "containerPath": "/a", "type": "bind"}]}), "0.4.0"),
    (
        "M3 mount options only",
        spec({"mounts": [{"hostPath": "/a", "containerPath": "/a", "options": ["ro"]}]}),
        "0.3.0",
    ),
    ("M4 node hostPath", spec({"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/example"}]}), "0.5.0"),
    (
        "M5 hostPath == path",
        spec(dev_edits={"deviceNodes": [{"path": "/some/path", "hostPath": "/some/path"}]}),
        "0.5.0",
    ),
    ("M6 name 0example", spec(device_name="0example"), "0.5.0"),
    ("M6 name 0", spec(device_name="0"), "0.5.0"),
    ("M7 name device0", spec(device_name="device0"), "0.3.0"),
    ("M8 spec annotations", spec(annotations={"example.com/key": "value"}), "0.6.0"),
    ("M9 device annotations", spec(device_annotations={"key": "value"}), "0.6.0"),
    ("M10 empty annotations", spec(annotations={}), "0.3.0"),
    ("M11 dotted class", spec(kind="example.com/example.class"), "0.6.0"),
    ("M12 dotted vendor", spec(kind="ex.ample.com/class"), "0.3.0"),
    ("M13 gids spec", spec({"additionalGids": [1]}), "0.7.0"),
    ("M13 gids device", spec(dev_edits={"additionalGids": [1]}), "0.7.0"),
    ("M14 gid 0", spec({"additionalGids": [0]}), "0.7.0"),
    ("M15 rdt empty", spec({"intelRdt": {}}), "0.7.0"),
    ("M15 rdt closID", spec(dev_edits={"intelRdt": {"closID": "foo"}}), "0.7.0"),
    ("M16 schemata spec", spec({"intelRdt": {"schemata": ["L3:0=ff"]}}), "1.1.0"),
    ("M16 schemata device", spec(dev_edits={"intelRdt": {"schemata": ["L3:0=ff"]}}), "1.1.0"),
    ("M17 schemata []", spec({"intelRdt": {"schemata": []}}), "1.1.0"),
    ("M17 schemata null", spec({"intelRdt": {"schemata": None}}), "0.7.0"),
    ("M18 monitoring true", spec({"intelRdt": {"enableMonitoring": True}}), "1.1.0"),
    ("M18 monitoring false", spec({"intelRdt": {"enableMonitoring": False}}), "0.7.0"),
    ("M19 netDevices", spec({"netDevices": [{"hostInterfaceName": "eno1", "name": "n0"}]}), "1.1.0"),
    (
        "M20 all",
        spec(
            {"additionalGids": [1], "netDevices": [{"hostInterfaceName": "e", "name": "n"}]},
            annotations={"a": "b"},
        ),
        "1.1.0",
    ),
    (
        "M21 ann+hostPath+type",
        spec(
            {
                "deviceNodes": [{"path": "/dev/a", "hostPath": "/dev/b"}],
                "mounts": [{"hostPath": "/a", "containerPath": "/a", "type": "bind"}],
            },
            annotations={"a": "b"},
        ),
        "0.6.0",
    ),
    (
        "M22 full 0.3.0",
        spec(
            {
                "hooks": [{"hookName": "prestart", "path": "/bin/h", "timeout": 5}],
                "deviceNodes": [
                    {
                        "path": "/dev/a",
                        "type": "c",
                        "major": 1,
                        "minor": 2,
                        "fileMode": 438,
                        "permissions": "rw",
                        "uid": 1,
                        "gid": 2,
                    }
                ],
                "env": ["X=1"],
            }
        ),
        "0.3.0",
    ),
]


@pytest.mark.parametrize(("label", "doc", "expected"), MIN_VERSION, ids=[m[0] for m in MIN_VERSION])
def test_minimum_version(label, doc, expected):
    assert minimum_version(doc) == expected
    # a spec declaring exactly its minimum is valid; one version below is not (unless 0.3.0)
    doc = copy.deepcopy(doc)
    doc["cdiVersion"] = expected
    assert validate_spec_dict(doc) == []


@pytest.mark.parametrize(
    ("declared", "gids", "problem"),
    [
        ("1.1.0", False, None),
        ("v1.1.0", False, None),
        ("0.3.0", False, None),
        ("0.1.0", False, "the spec version must be at least v0.3.0"),
        ("v0.2.0", False, "the spec version must be at least v0.3.0"),
        ("1.2.0", False, 'invalid version "1.2.0"'),
        ("not-a-version", False, 'invalid version "not-a-version"'),
        ("0.6.0", True, "the spec version must be at least v0.7.0"),
        ("0.7.0", True, None),
        ("1.1.0", True, None),
        ("", False, 'invalid version ""'),
        ("0.0.0", False, 'invalid version "0.0.0"'),
        ("V1.1.0", False, 'invalid version "V1.1.0"'),
        ("1.1", False, 'invalid version "1.1"'),
        ("vv1.1.0", False, 'invalid version "vv1.1.0"'),
        ("1.1.0 ", False, 'invalid version "1.1.0 "'),
    ],
)
def test_validate_version(declared, gids, problem):
    doc = spec({"additionalGids": [1]} if gids else None)
    doc["cdiVersion"] = declared
    problems = validate_spec_dict(doc)
    if problem is None:
        assert problems == []
    else:
        assert problems == [f"cdiVersion: {problem}"]


def test_minimum_version_of_spec_object():
    from gpuctk.cdi import Spec

    s = Spec.from_dict(spec(device_name="0dev"))
    assert s.minimum_version() == "0.5.0"
    assert minimum_version(s) == "0.5.0"
