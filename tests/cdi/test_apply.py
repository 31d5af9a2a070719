"""Apply vectors after cncf-tags/container-device-interface ``pkg/cdi/container-edits_test.go`` and
``pkg/cdi/cache_test.go`` (A1..A20)."""

import copy
import os
from typing import Any

import pytest

from gpuctk.cdi import CDIError, Registry, Spec, UnresolvableDevicesError, apply_edits

NULL_DEV = os.stat("/dev/null")
NULL_MAJOR, NULL_MINOR = os.major(NULL_DEV.st_rdev), os.minor(NULL_DEV.st_rdev)
NULL_MODE = NULL_DEV.st_mode & 0o7777

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]

APPLY = [
    ("A1 nothing", {}, {}, {}),
    ("A2 env", {}, {"env": ["BAR=BARVALUE1"]}, {"process": {"env": ["BAR=BARVALUE1"]}}),
    ("A3 env dup in edits", {}, {"env": ["FOO=old", "FOO=new"]}, {"process": {"env": ["FOO=new"]}}),
    (
        "A4 env replaced in place (HEAD)",
        {"process": {"env": ["FOO=old", "BAR=old"]}},
        {"env": ["FOO=new"]},
        {"process": {"env": ["FOO=new", "BAR=old"]}},
    ),
    (
        "A5 /dev/null from host",
        {},
        {"deviceNodes": [{"path": "/dev/null"}]},
        {
            "linux": {
                "devices": [
                    {
                        "path": "/dev/null",
                        "type": "c",
                        "major": NULL_MAJOR,
                        "minor": NULL_MINOR,
                        "fileMode": NULL_MODE,
                    }
                ],
                "resources": {
                    "devices": [
                        {
                            "allow": True,
                            "type": "c",
                            "major": NULL_MAJOR,
                            "minor": NULL_MINOR,
                            "access": "rwm",
                        }
                    ]
                },
            }
        },
    ),
    (
        "A6 minimal, none",
        {},
        {"deviceNodes": [{"path": "/dev/nil", "type": "c", "major": 1, "minor": 3, "permissions": "none"}]},
        {
            "linux": {
                "devices": [{"path": "/dev/nil", "type": "c", "major": 1, "minor": 3}],
                "resources": {"devices": [{"allow": True, "type": "c", "major": 1, "minor": 3}]},
            }
        },
    ),
    (
        "A6 minimal, default access",
        {},
        {"deviceNodes": [{"path": "/dev/nil", "type": "c", "major": 1, "minor": 3}]},
        {
            "linux": {
                "devices": [{"path": "/dev/nil", "type": "c", "major": 1, "minor": 3}],
                "resources": {
                    "devices": [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
                },
            }
        },
    ),
    (
        "A7 mount",
        {},
        {"mounts": [{"hostPath": "/dev/host-vendorctl", "containerPath": "/dev/cntr-vendorctl"}]},
        {"mounts": [{"destination": "/dev/cntr-vendorctl", "source": "/dev/host-vendorctl"}]},
    ),
    (
        "A8 six hooks",
        {},
        {
            "hooks": [
                {"hookName": h, "path": f"/bin/{h}", "args": ["a"], "env": ["E=1"], "timeout": 5}
                for h in HOOKS
            ]
        },
        {"hooks": {h: [{"path": f"/bin/{h}", "args": ["a"], "env": ["E=1"], "timeout": 5}] for h in HOOKS}},
    ),
    (
        "A9 rdt",
        {},
        {
            "intelRdt": {
                "closID": "clos-1",
                "l3CacheSchema": "L3:0=ff",
                "memBwSchema": "MB:0=50",
                "schemata": ["L2:0=f"],
                "enableMonitoring": True,
            }
        },
        {
            "linux": {
                "intelRdt": {
                    "closID": "clos-1",
                    "l3CacheSchema": "L3:0=ff",
                    "memBwSchema": "MB:0=50",
                    "schemata": ["L2:0=f"],
                    "enableMonitoring": True,
                }
            }
        },
    ),
    (
        "A10 rdt replaced",
        {"linux": {"intelRdt": {"closID": "clos-1", "schemata": ["x"], "enableMonitoring": True}}},
        {"intelRdt": {"closID": "clos-2", "l3CacheSchema": "L3:0=f"}},
        {"linux": {"intelRdt": {"closID": "clos-2", "l3CacheSchema": "L3:0=f"}}},
    ),
    (
        "A11 net devices",
        {},
        {
            "netDevices": [
                {"hostInterfaceName": "eno1", "name": "netdev0"},
                {"hostInterfaceName": "eno2", "name": "netdev1"},
            ]
        },
        {"linux": {"netDevices": {"eno1": {"name": "netdev0"}, "eno2": {"name": "netdev1"}}}},
    ),
    (
        "A12 net devices overwrite",
        {"linux": {"netDevices": {"eno1": {"name": "netdev1"}}}},
        {
            "netDevices": [
                {"hostInterfaceName": "eno1", "name": "netdev2"},
                {"hostInterfaceName": "eno2", "name": "netdev1"},
            ]
        },
        {"linux": {"netDevices": {"eno1": {"name": "netdev2"}, "eno2": {"name": "netdev1"}}}},
    ),
    ("A13 gids", {}, {"additionalGids": [4, 5, 6]}, {"process": {"user": {"additionalGids": [4, 5, 6]}}}),
    (
        "A13 gids existing",
        {"process": {"user": {"additionalGids": [4]}}},
        {"additionalGids": [4, 5]},
        {"process": {"user": {"additionalGids": [4, 5]}}},
    ),
    (
        "A13 gids dedup",
        {},
        {"additionalGids": [4, 5, 6, 5, 6, 4]},
        {"process": {"user": {"additionalGids": [4, 5, 6]}}},
    ),
    ("A13 gid 0 skipped", {}, {"additionalGids": [0]}, {}),
    (
        "A14 mounts sorted by depth",
        {"mounts": [{"destination": "/dest/path/b"}, {"destination": "/dest/path/a"}]},
        {"mounts": [{"hostPath": "/h", "containerPath": "/dest/edit"}]},
        {
            "mounts": [
                {"destination": "/dest/edit", "source": "/h"},
                {"destination": "/dest/path/b"},
                {"destination": "/dest/path/a"},
            ]
        },
    ),
    (
        "A15 same depth appended",
        {"mounts": [{"destination": "/dest/path/c"}, {"destination": "/dest/path/b"}]},
        {"mounts": [{"hostPath": "/h", "containerPath": "/dest/path/a"}]},
        {
            "mounts": [
                {"destination": "/dest/path/c"},
                {"destination": "/dest/path/b"},
                {"destination": "/dest/path/a", "source": "/h"},
            ]
        },
    ),
    (
        "A16 idmap",
        {"linux": {"namespaces": [{"type": "user"}]}},
        {
            "mounts": [
                {"hostPath": "/a", "containerPath": "/a", "type": "bind"},
                {"hostPath": "/b", "containerPath": "/b", "type": "bind", "options": ["rbind"]},
                {"hostPath": "/c", "containerPath": "/c", "options": ["ro"]},
            ]
        },
        {
            "linux": {"namespaces": [{"type": "user"}]},
            "mounts": [
                {"destination": "/a", "type": "bind", "source": "/a", "options": ["idmap"]},
                {"destination": "/b", "type": "bind", "source": "/b", "options": ["rbind", "ridmap"]},
                {"destination": "/c", "source": "/c", "options": ["ro"]},
            ],
        },
    ),
    (
        "A17 process uid",
        {"process": {"user": {"uid": 1000, "gid": 0}}},
        {"deviceNodes": [{"path": "/dev/x", "type": "c", "major": 7, "minor": 1}]},
        {
            "process": {"user": {"uid": 1000, "gid": 0}},
            "linux": {
                "devices": [{"path": "/dev/x", "type": "c", "major": 7, "minor": 1, "uid": 1000}],
                "resources": {
                    "devices": [{"allow": True, "type": "c", "major": 7, "minor": 1, "access": "rwm"}]
                },
            },
        },
    ),
    (
        "A18 same path replaced, last",
        {
            "linux": {
                "devices": [
                    {"path": "/dev/x", "type": "c", "major": 1, "minor": 1},
                    {"path": "/dev/y", "type": "c", "major": 2, "minor": 2},
                ]
            }
        },
        {"deviceNodes": [{"path": "/dev/x", "type": "b", "major": 9, "minor": 9, "permissions": "r"}]},
        {
            "linux": {
                "devices": [
                    {"path": "/dev/y", "type": "c", "major": 2, "minor": 2},
                    {"path": "/dev/x", "type": "b", "major": 9, "minor": 9},
                ],
                "resources": {
                    "devices": [{"allow": True, "type": "b", "major": 9, "minor": 9, "access": "r"}]
                },
            }
        },
    ),
    (
        "unknown fields kept",
        {"ociVersion": "1.0.2", "x-vendor": {"a": [1, 2]}, "process": {"env": ["A=1"], "zzz": 1}},
        {"env": ["B=2"]},
        {"ociVersion": "1.0.2", "x-vendor": {"a": [1, 2]}, "process": {"env": ["A=1", "B=2"], "zzz": 1}},
    ),
    (
        "u and p nodes: no cgroup rule",
        {},
        {"deviceNodes": [{"path": "/dev/u", "type": "u", "major": 5}, {"path": "/dev/p", "type": "p"}]},
        {
            "linux": {
                "devices": [
                    {"path": "/dev/u", "type": "u", "major": 5, "minor": 0},
                    {"path": "/dev/p", "type": "p", "major": 0, "minor": 0},
                ]
            }
        },
    ),
]


@pytest.mark.parametrize(("label", "before", "edits", "after"), APPLY, ids=[a[0] for a in APPLY])
def test_apply(label, before, edits, after):
    oci = copy.deepcopy(before)
    apply_edits(oci, edits)
    assert oci == after


def test_a20_missing_host_device_changes_nothing():
    oci = {"process": {"env": ["A=1"]}}
    with pytest.raises(CDIError) as exc:
        apply_edits(oci, {"env": ["B=2"], "deviceNodes": [{"path": "/dev/doesnotexist"}]})
    assert str(exc.value) == 'failed to stat CDI host device "/dev/doesnotexist": No such file or directory'
    assert oci == {"process": {"env": ["A=1"]}}  # env was not applied either


def test_host_type_mismatch_and_not_a_device(tmp_path):
    with pytest.raises(CDIError, match=r"host type mismatch \(b, c\)"):
        apply_edits({}, {"deviceNodes": [{"path": "/dev/null", "type": "b"}]})
    with pytest.raises(CDIError, match=r"host type mismatch \(u, c\)"):
        apply_edits({}, {"deviceNodes": [{"path": "/dev/null", "type": "u"}]})
    (tmp_path / "f").write_text("x")
    with pytest.raises(CDIError, match="not a device node"):
        apply_edits({}, {"deviceNodes": [{"path": "/dev/x", "hostPath": str(tmp_path / "f")}]})
    os.symlink("/dev/null", tmp_path / "link")  # lstat: a symlink is not a device node
    with pytest.raises(CDIError, match="not a device node"):
        apply_edits({}, {"deviceNodes": [{"path": "/dev/x", "hostPath": str(tmp_path / "link")}]})


def test_host_fills_major_minor_and_mode_but_keeps_spec_values():
    oci: dict[str, Any] = {}
    apply_edits(
        oci,
        {
            "deviceNodes": [
                {
                    "path": "/dev/x",
                    "hostPath": "/dev/null",
                    "minor": 77,
                    "fileMode": 0o600,
                    "uid": 0,
                    "gid": 5,
                }
            ]
        },
    )
    dev = oci["linux"]["devices"][0]
    assert (dev["major"], dev["minor"]) == (NULL_MAJOR, NULL_MINOR)  # major 0: both from the host
    assert dev["fileMode"] == 0o600 and dev["uid"] == 0 and dev["gid"] == 5


def test_invalid_edits_rejected():
    with pytest.raises(CDIError, match="invalid environment variable"):
        apply_edits({}, {"env": ["NOEQUALS"]})
    with pytest.raises(CDIError, match='unknown field "bogus"'):
        apply_edits({}, {"bogus": 1})


def _registry(*docs):
    return Registry(spec_dirs=[], specs=[Spec.from_dict(d, source=f"mem{i}") for i, d in enumerate(docs)])


VENDOR1 = {
    "cdiVersion": "0.3.0",
    "kind": "vendor1.com/device",
    "containerEdits": {"env": ["VENDOR1_SPEC_VAR1=VAL1"]},
    "devices": [
        {
            "name": "dev1",
            "containerEdits": {
                "env": ["VENDOR1_VAR1=VAL1"],
                "deviceNodes": [{"path": "/dev/vendor1-dev1", "type": "b", "major": 10, "minor": 1}],
            },
        },
        {
            "name": "dev2",
            "containerEdits": {
                "env": ["VENDOR1_VAR2=VAL2"],
                "deviceNodes": [{"path": "/dev/vendor1-dev2", "type": "b", "major": 10, "minor": 2}],
                "hooks": [
                    {"hookName": "prestart", "path": "/bin/pre"},
                    {"hookName": "createRuntime", "path": "/bin/cr"},
                ],
            },
        },
        {
            "name": "dev3",
            "containerEdits": {
                "env": ["VENDOR1_VAR3=VAL3"],
                "deviceNodes": [{"path": "/dev/vendor1-dev3", "type": "b", "major": 10, "minor": 3}],
            },
        },
    ],
}


def test_inject_one_device_with_global_edits():
    oci: dict[str, Any] = {
        "process": {"env": ["ORIG_VAR1=VAL1", "ORIG_VAR2=VAL2"]},
        "linux": {"devices": [{"path": "/dev/null"}, {"path": "/dev/zero"}]},
    }
    assert _registry(VENDOR1).inject_devices(oci, ["vendor1.com/device=dev1"]) == ["vendor1.com/device=dev1"]
    assert oci["process"]["env"] == [
        "ORIG_VAR1=VAL1",
        "ORIG_VAR2=VAL2",
        "VENDOR1_SPEC_VAR1=VAL1",
        "VENDOR1_VAR1=VAL1",
    ]
    assert oci["linux"]["devices"] == [
        {"path": "/dev/null"},
        {"path": "/dev/zero"},
        {"path": "/dev/vendor1-dev1", "type": "b", "major": 10, "minor": 1},
    ]
    assert len(oci["linux"]["resources"]["devices"]) == 1


def test_inject_three_devices_global_edits_once():
    oci: dict[str, Any] = {}
    _registry(VENDOR1).inject_devices(oci, [f"vendor1.com/device=dev{i}" for i in (1, 2, 3)])
    assert oci["process"]["env"] == [
        "VENDOR1_SPEC_VAR1=VAL1",
        "VENDOR1_VAR1=VAL1",
        "VENDOR1_VAR2=VAL2",
        "VENDOR1_VAR3=VAL3",
    ]
    assert [d["minor"] for d in oci["linux"]["devices"]] == [1, 2, 3]
    assert [r["minor"] for r in oci["linux"]["resources"]["devices"]] == [1, 2, 3]
    assert set(oci["hooks"]) == {"prestart", "createRuntime"}


def test_a19_unresolvable_changes_nothing():
    oci = {"process": {"env": ["A=1"]}}
    with pytest.raises(UnresolvableDevicesError) as exc:
        _registry(VENDOR1).inject_devices(
            oci, ["vendor1.com/device=dev1", "vendor1.com/device=dev9", "x/y=z"]
        )
    assert str(exc.value) == "unresolvable CDI devices vendor1.com/device=dev9, x/y=z"
    assert exc.value.names == ["vendor1.com/device=dev9", "x/y=z"]
    assert oci == {"process": {"env": ["A=1"]}}


def test_global_edits_once_per_spec_file():
    other = copy.deepcopy(VENDOR1)
    other["kind"] = "vendor2.com/device"
    other["containerEdits"] = {"env": ["VENDOR2_SPEC=1"]}
    oci: dict[str, Any] = {}
    _registry(VENDOR1, other).inject_devices(
        oci, ["vendor2.com/device=dev1", "vendor1.com/device=dev2", "vendor2.com/device=dev3"]
    )
    assert oci["process"]["env"] == [
        "VENDOR2_SPEC=1",
        "VENDOR1_VAR1=VAL1",
        "VENDOR1_SPEC_VAR1=VAL1",
        "VENDOR1_VAR2=VAL2",
        "VENDOR1_VAR3=VAL3",
    ]


def test_inject_does_not_mutate_registry():
    reg = _registry(
        {
            "cdiVersion": "0.3.0",
            "kind": "v.com/d",
            "devices": [{"name": "n", "containerEdits": {"deviceNodes": [{"path": "/dev/null"}]}}],
        }
    )
    before = reg.get_device("v.com/d=n").spec.to_dict()
    a, b = dict[str, Any](), dict[str, Any]()
    reg.inject_devices(a, ["v.com/d=n"])
    reg.inject_devices(b, ["v.com/d=n"])
    assert a == b
    assert reg.get_device("v.com/d=n").spec.to_dict() == before


def test_nil_oci_spec():
    with pytest.raises(CDIError, match="nil OCI Spec"):
        _registry(VENDOR1).inject_devices(None, ["vendor1.com/device=dev1"])


def test_fifo_host_node(tmp_path):
    os.mkfifo(tmp_path / "fifo", 0o640)
    oci: dict[str, Any] = {}
    apply_edits(oci, {"deviceNodes": [{"path": "/dev/fifo", "hostPath": str(tmp_path / "fifo")}]})
    assert oci == {
        "linux": {"devices": [{"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640}]}
    }  # no cgroup rule for a FIFO


def test_minimal_node_gets_host_mode_when_host_exists():
    oci: dict[str, Any] = {}
    apply_edits(
        oci,
        {"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/null", "type": "c", "major": 9, "minor": 9}]},
    )
    assert oci["linux"]["devices"] == [
        {"path": "/dev/x", "type": "c", "major": 9, "minor": 9, "fileMode": NULL_MODE}
    ]


@pytest.mark.parametrize(
    ("oci", "field"),
    [
        ({"process": "x"}, "process"),
        ({"process": {"env": "A=1"}}, "process.env"),
        ({"linux": {"devices": {}}}, "linux.devices"),
        ({"mounts": {}}, "mounts"),
        ({"hooks": {"prestart": {}}}, "hooks.prestart"),
        ({"linux": {"resources": {"devices": 1}}}, "linux.resources.devices"),
    ],
)
def test_malformed_oci_spec_is_a_clean_error(oci, field):
    before = copy.deepcopy(oci)
    with pytest.raises(CDIError, match=f"invalid OCI spec: {field} must be"):
        apply_edits(
            oci,
            {
                "env": ["A=1"],
                "mounts": [{"hostPath": "/a", "containerPath": "/a"}],
                "hooks": [{"hookName": "prestart", "path": "/h"}],
                "deviceNodes": [{"path": "/dev/x", "type": "c", "major": 1}],
            },
        )
    assert oci == before
