"""The CDI goldens (tests/data/cdi/golden) checked by the CDI specification's rules, not by gpuctk.

test_write.py compares write_spec/inject output with files gpuctk produced once. Here the same files
are read with PyYAML/json only and held against what the CDI spec (cncf-tags/container-device-interface
``SPEC.md``, ``pkg/cdi/container-edits.go``) says they must contain, computed in this file from the
inputs: the written spec says what was given, at the lowest cdiVersion that can say it; the injected
config.json carries every edit of every requested device.
"""

from __future__ import annotations

import json
import os

import yaml

from .test_write import DOC

HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "..", "data", "cdi", "golden")
EXAMPLES = os.path.join(HERE, "..", "..", "examples", "cdi")


def _read(name: str) -> str:
    with open(os.path.join(GOLDEN, name)) as f:
        return f.read()


def test_written_golden_says_what_was_given():
    for doc in (json.loads(_read("example.json")), yaml.safe_load(_read("example.yaml"))):
        # nothing in DOC needs more than 0.3.0 (hostPath equal to path may be left out; no
        # 0.5.0+ fields such as annotations on devices, intelRdt, additionalGids, netDevices)
        assert doc["cdiVersion"] == "0.3.0"
        assert doc["kind"] == DOC["kind"]
        assert doc["containerEdits"] == DOC["containerEdits"]
        assert [d["name"] for d in doc["devices"]] == [d["name"] for d in DOC["devices"]]
        for got, want in zip(doc["devices"], DOC["devices"], strict=True):
            g, w = got["containerEdits"], want["containerEdits"]
            assert g["env"] == w["env"]  # strings stay strings (NUM=0666, T=1:30, Y=y)
            assert g.get("mounts") == w.get("mounts")
            for gn, wn in zip(g.get("deviceNodes", []), w.get("deviceNodes", []), strict=True):
                expected = dict(wn)
                if expected.get("hostPath") == expected["path"]:
                    expected.pop("hostPath")
                # specs-go DeviceNode: major/minor/fileMode are `omitempty`, so a 0 is not written
                expected = {
                    k: v for k, v in expected.items() if not (k in ("major", "minor", "fileMode") and v == 0)
                }
                assert gn == expected


def _example_spec() -> dict:
    with open(os.path.join(EXAMPLES, "specs", "example-gpu.yaml")) as f:
        return yaml.safe_load(f)


def test_injected_golden_carries_every_edit_of_the_requested_devices():
    spec = _example_spec()
    with open(os.path.join(EXAMPLES, "config.json")) as f:
        before = json.load(f)
    after = json.loads(_read("inject-example.json"))
    devices = [d for d in spec["devices"] if d["name"] in ("gpu0", "gpu1")]
    edits = [spec.get("containerEdits") or {}] + [d["containerEdits"] for d in devices]

    # env: merged by name, the last one wins
    want_env: dict[str, str] = {e.split("=", 1)[0]: e for e in before["process"]["env"]}
    for e in (e for ed in edits for e in ed.get("env", [])):
        want_env[e.split("=", 1)[0]] = e
    assert sorted(after["process"]["env"]) == sorted(want_env.values())

    # device nodes: every path, with the cgroup rule that lets the container open it
    nodes = [n for ed in edits for n in ed.get("deviceNodes", [])]
    by_path = {d["path"]: d for d in after["linux"]["devices"]}
    rules = after["linux"]["resources"]["devices"]
    for n in nodes:
        dev = by_path[n["path"]]
        host = os.stat(n.get("hostPath", n["path"])) if "major" not in n else None
        major = n.get("major", os.major(host.st_rdev) if host else None)
        minor = n.get("minor", os.minor(host.st_rdev) if host else None)
        assert (dev["type"], dev["major"], dev["minor"]) == (n.get("type", "c"), major, minor)
        access = n.get("permissions") or "rwm"
        assert {"allow": True, "type": dev["type"], "major": major, "minor": minor, "access": access} in rules

    # mounts: every containerPath, from its hostPath, with its options; sorted by depth
    mounts = {m["destination"]: m for m in after["mounts"]}
    for m in (m for ed in edits for m in ed.get("mounts", [])):
        got = mounts[m["containerPath"]]
        assert got["source"] == m["hostPath"] and got.get("options", []) == m.get("options", [])
    depths = [os.path.normpath(m["destination"]).count("/") for m in after["mounts"]]
    assert depths == sorted(depths)

    # hooks: appended under their OCI hook name, in order
    hooks = [h for ed in edits for h in ed.get("hooks", [])]
    for name in {h["hookName"] for h in hooks}:
        want = [{"path": h["path"], "args": h["args"]} for h in hooks if h["hookName"] == name]
        assert [{"path": h["path"], "args": h.get("args")} for h in after["hooks"][name]][
            -len(want) :
        ] == want

    # and nothing else of config.json changed
    for key in set(before) - {"process", "linux", "mounts", "hooks"}:
        assert after[key] == before[key]
