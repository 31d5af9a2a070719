"""The mount and device-node edits find an existing entry through a count of its key instead of
scanning the list for every edit (gpuctk.cdi.apply ``_str_counts``). These tests hold the result
to the plain scan (the reference's ``internal/ociedit`` order, as apply.py did it before) on
random specs: repeated and clashing destinations/paths, entries that are no dict, keys that are
missing, null or no string."""

from __future__ import annotations

import copy
import os
import posixpath
import random
import types
from typing import Any

import pytest

from gpuctk.cdi import apply as A


def _ref_apply_mounts(oci: dict[str, Any], mounts: list[dict[str, Any]]) -> None:
    userns = any(
        isinstance(ns, dict) and ns.get("type") == "user"
        for ns in (oci.get("linux") or {}).get("namespaces") or ()
    )
    oci_mounts = oci.get("mounts")
    if oci_mounts is None:
        oci_mounts = oci["mounts"] = []
    for m in mounts:
        dest = m["containerPath"]
        for i, old in enumerate(oci_mounts):
            if isinstance(old, dict) and old.get("destination") == dest:
                del oci_mounts[i]
                break
        entry: dict[str, Any] = {"destination": dest}
        if m.get("type"):
            entry["type"] = m["type"]
        entry["source"] = m["hostPath"]
        options = list(m.get("options") or ())
        if userns:
            options = A._with_idmap(options, m.get("type", ""))
        if options:
            entry["options"] = options
        oci_mounts.append(entry)

    def depth(dest: object) -> int:
        if not isinstance(dest, str) or not dest:
            return 0
        p = posixpath.normpath(dest)
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
        return p.count("/")

    oci_mounts.sort(key=lambda mt: depth(mt.get("destination") if isinstance(mt, dict) else None))


def _ref_devices(devices: list[Any], dev: dict[str, Any]) -> None:
    for i, d in enumerate(devices):
        if isinstance(d, dict) and d.get("path") == dev["path"]:
            del devices[i]
            break
    for i, d in enumerate(devices):
        if isinstance(d, dict) and d.get("path") == dev["path"]:
            devices[i] = dev
            break
    else:
        devices.append(dev)


PATHS = ["/a", "/a/b", "/a//b", "/a/./b", "/a/../c", "//x", "/a/b/", "rel", "", "/.h/i", "/a/b/c/d"]


def _value(rng: random.Random) -> object:
    r = rng.random()
    if r < 0.85:
        return rng.choice(PATHS)
    return rng.choice([None, 7, ["/a"], 1.5])


def _existing(rng: random.Random, key: str, typed: bool) -> list[Any]:
    out: list[Any] = []
    for _ in range(rng.randint(0, 8)):
        r = rng.random()
        if r < 0.08:
            out.append("not a dict")
        elif r < 0.15:
            out.append({"other": 1})
        else:
            out.append({key: _value(rng) if not typed else rng.choice(PATHS), "n": len(out)})
    return out


@pytest.mark.parametrize("seed", range(300))
def test_mounts_match_the_scanning_implementation(seed: int) -> None:
    rng = random.Random(seed)
    oci: dict[str, Any] = {"mounts": _existing(rng, "destination", typed=rng.random() < 0.5)}
    if rng.random() < 0.3:
        oci["linux"] = {"namespaces": [{"type": "user"}]}
    mounts = []
    for k in range(rng.randint(1, 10)):
        dest = rng.choice(PATHS) if rng.random() < 0.9 else _value(rng)
        m: dict[str, Any] = {"containerPath": dest, "hostPath": f"/host/{k}"}
        if rng.random() < 0.5:
            m["type"] = "bind"
            m["options"] = ["ro"]
        mounts.append(m)
    want = copy.deepcopy(oci)
    _ref_apply_mounts(want, copy.deepcopy(mounts))
    A._apply_mounts(oci, mounts)
    assert oci == want


@pytest.mark.parametrize("seed", range(300))
def test_device_nodes_match_the_scanning_implementation(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(
        A.os, "lstat", lambda _p: types.SimpleNamespace(st_mode=0o20666, st_rdev=os.makedev(1, 3))
    )
    existing = _existing(rng, "path", typed=rng.random() < 0.5)
    oci: dict[str, Any] = {"linux": {"devices": existing}} if rng.random() < 0.9 else {}
    nodes = [
        {"path": rng.choice(PATHS) if rng.random() < 0.95 else _value(rng), "major": 1, "minor": k}
        for k in range(rng.randint(1, 8))
    ]
    want = copy.deepcopy(oci)
    for n in [A.fill_device_node(n) for n in nodes]:
        dev = {k: n[k] for k in ("path", "type", "major", "minor")} | {"fileMode": n["fileMode"]}
        _ref_devices(want.setdefault("linux", {}).setdefault("devices", []), dev)
    A.apply_canonical(oci, {"deviceNodes": nodes})
    assert oci["linux"]["devices"] == want["linux"]["devices"]
