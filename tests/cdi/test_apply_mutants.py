"""Tests written against the mutants of gpuctk.cdi.apply that the rest of the suite let live.

Each test names the behaviour it pins; docs/testing.md lists the run (mutmut) and the mutants
left alive on purpose (equivalent ones). The reference is the CDI library's
``pkg/cdi/container-edits.go`` / ``internal/ociedit`` (cncf-tags/container-device-interface).
"""

from __future__ import annotations

import os
import stat
import types
from typing import Any

import pytest

from gpuctk.cdi import CDIError
from gpuctk.cdi import apply as A


def _fake_lstat(mode: int, major: int = 0, minor: int = 0):
    return lambda _path: types.SimpleNamespace(st_mode=mode, st_rdev=os.makedev(major, minor))


# ------------------------------------------------------------------ merge_edits
def test_merge_concatenates_every_list_field_and_the_last_rdt_wins():
    a = {
        "netDevices": [{"hostInterfaceName": "e0", "name": "n0"}],
        "additionalGids": [5],
        "intelRdt": {"closID": "a"},
    }
    b = {
        "netDevices": [{"hostInterfaceName": "e1", "name": "n1"}],
        "additionalGids": [6],
        "intelRdt": {"closID": "b"},
    }
    merged = A.merge_edits([a, b, {"env": ["X=1"]}])
    assert merged == {
        "netDevices": [{"hostInterfaceName": "e0", "name": "n0"}, {"hostInterfaceName": "e1", "name": "n1"}],
        "additionalGids": [5, 6],
        "intelRdt": {"closID": "b"},
        "env": ["X=1"],
    }
    assert A.merge_edits([{"intelRdt": {"closID": "only"}}]) == {"intelRdt": {"closID": "only"}}


# ------------------------------------------------------------------ host device nodes
@pytest.mark.parametrize(
    "mode,typ", [(stat.S_IFBLK | 0o660, "b"), (stat.S_IFCHR | 0o666, "c"), (stat.S_IFIFO | 0o600, "p")]
)
def test_host_device_info_types(monkeypatch, mode, typ):
    monkeypatch.setattr(A.os, "lstat", _fake_lstat(mode, 8, 1))
    assert A.host_device_info("/dev/x") == (typ, 8, 1, stat.S_IMODE(mode))


def test_a_regular_file_is_not_a_device_node(tmp_path):
    f = tmp_path / "plain"
    f.write_text("")
    with pytest.raises(CDIError) as e:
        A.fill_device_node({"path": str(f)})
    assert str(e.value) == f'failed to stat CDI host device "{f}": not a device node'


def test_a_node_without_path_names_the_empty_host_path():
    with pytest.raises(CDIError) as e:
        A.fill_device_node({})
    assert str(e.value) == 'failed to stat CDI host device "": No such file or directory'


def test_a_node_with_major_but_no_type_gets_the_host_type():
    n = A.fill_device_node({"path": "/dev/null", "major": 1, "minor": 3})
    assert n["type"] == "c" and n["hostPath"] == "/dev/null" and n["fileMode"] == 0o666


def test_a_host_fifo_gets_no_major_minor(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    n = A.fill_device_node({"path": str(fifo)})
    assert n["type"] == "p" and "major" not in n and "minor" not in n


# ------------------------------------------------------------------ OCI shape
@pytest.mark.parametrize(
    "oci,message",
    [
        ([], "invalid OCI spec: not a JSON object"),
        ({"process": []}, "invalid OCI spec: process must be an object"),
        ({"process": {"env": {}}}, "invalid OCI spec: process.env must be a list"),
        ({"hooks": {"prestart": {}}}, "invalid OCI spec: hooks.prestart must be a list"),
    ],
)
def test_bad_oci_shapes_name_the_field(oci, message):
    with pytest.raises(CDIError) as e:
        A.check_oci_shape(oci)
    assert str(e.value) == message


def test_unknown_hook_name_is_named():
    with pytest.raises(CDIError) as e:
        A.apply_canonical({}, {"hooks": [{"hookName": "bogus", "path": "/x"}]})
    assert str(e.value) == 'unknown hook name "bogus"'


# ------------------------------------------------------------------ env
def test_env_is_replaced_by_the_name_before_the_first_equals_sign():
    oci: dict[str, Any] = {"process": {"env": ["A=x=y", "B=1"]}}
    A.apply_canonical(oci, {"env": ["A=z"]})
    assert oci["process"]["env"] == ["A=z", "B=1"]


def test_non_string_env_entries_in_the_oci_spec_are_tolerated():
    oci: dict[str, Any] = {"process": {"env": [5, "B=1"]}}
    A.apply_canonical(oci, {"env": ["B=2", "C=3"]})
    assert oci["process"]["env"] == [5, "B=2", "C=3"]


# ------------------------------------------------------------------ device nodes
def _node(path: str = "/dev/x", **kw):
    return {"path": path, "type": "c", "major": 10, "minor": 200, **kw}


@pytest.mark.parametrize("uid,gid", [(1, 1), (1000, 2000)])
def test_device_node_owner_comes_from_the_process_user(uid, gid):
    oci: dict[str, Any] = {"process": {"user": {"uid": uid, "gid": gid}}}
    A.apply_canonical(oci, {"deviceNodes": [_node()]})
    dev = oci["linux"]["devices"][0]
    assert (dev["uid"], dev["gid"]) == (uid, gid)


def test_device_node_own_gid_wins_over_the_process_gid():
    oci: dict[str, Any] = {"process": {"user": {"uid": 1000, "gid": 1000}}}
    A.apply_canonical(oci, {"deviceNodes": [_node(gid=44)]})
    dev = oci["linux"]["devices"][0]
    assert (dev["uid"], dev["gid"]) == (1000, 44)


def test_root_user_sets_no_owner():
    oci: dict[str, Any] = {"process": {"user": {"uid": 0, "gid": 0}}}
    A.apply_canonical(oci, {"deviceNodes": [_node()]})
    assert "uid" not in oci["linux"]["devices"][0] and "gid" not in oci["linux"]["devices"][0]


def test_duplicate_device_paths_in_the_oci_spec_collapse_to_one_and_keep_the_cgroup_rule():
    old = {"path": "/dev/x", "type": "c", "major": 1, "minor": 1}
    oci: dict[str, Any] = {"linux": {"devices": [dict(old), {"path": "/dev/y"}, dict(old)]}}
    A.apply_canonical(oci, {"deviceNodes": [_node()]})
    assert oci["linux"]["devices"] == [
        {"path": "/dev/y"},
        {"path": "/dev/x", "type": "c", "major": 10, "minor": 200},
    ]
    assert oci["linux"]["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ]


# ------------------------------------------------------------------ mounts
def _mount(dest: str, **kw):
    return {"containerPath": dest, "hostPath": "/h" + dest, **kw}


def test_mounts_sort_by_clean_depth_with_odd_destinations_first():
    oci: dict[str, Any] = {
        "mounts": [{"destination": "/a"}, {"type": "tmpfs"}, {"destination": 5}, "junk", {"destination": ""}]
    }
    A.apply_canonical(oci, {"mounts": [_mount("/b/c")]})
    assert oci["mounts"] == [
        {"type": "tmpfs"},
        {"destination": 5},
        "junk",
        {"destination": ""},
        {"destination": "/a"},
        {"destination": "/b/c", "source": "/h/b/c"},
    ]


def test_a_leading_double_slash_counts_as_one():
    oci: dict[str, Any] = {"mounts": [{"destination": "//a/b"}, {"destination": "/c/d"}]}
    A.apply_canonical(oci, {"mounts": [_mount("/e")]})
    assert [m["destination"] for m in oci["mounts"]] == ["/e", "//a/b", "/c/d"]


USERNS = {"linux": {"namespaces": [{"type": "user"}]}}


@pytest.mark.parametrize(
    "mount,options",
    [
        ({"type": "bind", "options": ["idmap"]}, ["idmap"]),
        ({"type": "bind", "options": ["rbind", "ridmap"]}, ["rbind", "ridmap"]),
        ({"options": ["bind"]}, ["bind", "idmap"]),
        ({"options": ["rbind"]}, ["rbind", "ridmap"]),
        ({"type": "bind"}, ["idmap"]),
        ({"type": "tmpfs"}, None),
    ],
)
def test_user_namespace_mounts_get_idmap_once(mount, options):
    oci: dict[str, Any] = {"linux": {"namespaces": [{"type": "user"}]}}
    A.apply_canonical(oci, {"mounts": [_mount("/m", **mount)]})
    assert oci["mounts"][0].get("options") == options


# ------------------------------------------------------------------ additional gids
def test_gids_keep_the_process_and_user_and_skip_known_ones():
    oci: dict[str, Any] = {"process": {"args": ["sh"], "user": {"uid": 1000, "additionalGids": [5]}}}
    A.apply_canonical(oci, {"additionalGids": [5, 6, 0, 6]})
    assert oci["process"] == {"args": ["sh"], "user": {"uid": 1000, "additionalGids": [5, 6]}}


def test_gids_already_present_change_nothing():
    oci: dict[str, Any] = {"process": {"user": {"additionalGids": [5]}}}
    A.apply_canonical(oci, {"additionalGids": [5, 0]})
    assert oci == {"process": {"user": {"additionalGids": [5]}}}


# ------------------------------------------------------------------ apply_edits
def test_nil_oci_spec():
    with pytest.raises(CDIError) as e:
        A.apply_edits(None, {})  # type: ignore[arg-type]
    assert str(e.value) == "can't edit nil OCI Spec"


@pytest.mark.parametrize(
    "edits,problem",
    [
        ({"env": "X=1"}, "containerEdits.env"),
        (
            {"deviceNodes": [{"path": "rel"}]},
            'containerEdits.deviceNodes[0].path: device path "rel" is not absolute',
        ),
    ],
)
def test_invalid_edits_name_the_field_and_carry_every_problem(edits, problem):
    with pytest.raises(CDIError) as e:
        A.apply_edits({}, edits)
    assert str(e.value).startswith(f"invalid container edits: {problem}")
    assert e.value.problems and e.value.problems[0].startswith(problem)


def test_gids_are_added_to_the_ones_the_user_already_has():
    oci: dict[str, Any] = {"process": {"user": {"uid": 1000, "additionalGids": [5]}}}
    A.apply_canonical(oci, {"additionalGids": [6]})
    assert oci["process"]["user"]["additionalGids"] == [5, 6]


def test_a_mount_replaces_the_one_at_the_same_destination():
    oci: dict[str, Any] = {"mounts": [{"destination": "/m", "source": "/old"}, {"destination": "/n"}]}
    A.apply_canonical(oci, {"mounts": [_mount("/m")]})
    assert oci["mounts"] == [{"destination": "/n"}, {"destination": "/m", "source": "/h/m"}]
