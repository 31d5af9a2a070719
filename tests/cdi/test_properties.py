"""Property tests: parse -> write -> parse is the identity (after the write normalisation),
and applying a device twice changes nothing more than applying it once."""

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuctk.cdi import Registry, Spec, parse_spec
from gpuctk.cdi.model import parse_document
from gpuctk.cdi.write import prepare_for_write, render_spec

EXAMPLES = int(os.environ.get("GPUCTK_HYPOTHESIS_EXAMPLES", "60"))  # raise for a longer soak

text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)
ident = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
abs_path = st.lists(ident, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
env = st.tuples(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), text).map(
    lambda kv: f"{kv[0]}={kv[1]}"
)
u32 = st.integers(0, 2**32 - 1)

node = st.fixed_dictionaries(
    {"path": abs_path},
    optional={
        "hostPath": abs_path,
        "type": st.sampled_from(["b", "c", "u", "p"]),
        "major": st.integers(1, 4095),
        "minor": st.integers(0, 2**20),
        "fileMode": st.integers(0, 0o7777),
        "permissions": st.sampled_from(["r", "rw", "rwm", "none", "mw"]),
        "uid": u32,
        "gid": u32,
    },
)
mount = st.fixed_dictionaries(
    {"hostPath": abs_path, "containerPath": abs_path},
    optional={"options": st.lists(text, max_size=3), "type": st.sampled_from(["bind", "tmpfs"])},
)
hook = st.fixed_dictionaries(
    {
        "hookName": st.sampled_from(
            ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
        ),
        "path": abs_path,
    },
    optional={
        "args": st.lists(text, max_size=3),
        "env": st.lists(env, max_size=2),
        "timeout": st.integers(-5, 100),
    },
)
rdt = st.fixed_dictionaries(
    {},
    optional={
        "closID": ident,
        "l3CacheSchema": text,
        "memBwSchema": text,
        "schemata": st.lists(text, max_size=2),
        "enableMonitoring": st.booleans(),
    },
)
edits = st.fixed_dictionaries(
    {},
    optional={
        "env": st.lists(env, max_size=3),
        "deviceNodes": st.lists(node, max_size=2),
        "netDevices": st.lists(
            st.fixed_dictionaries({"hostInterfaceName": ident, "name": ident}), max_size=1
        ),
        "hooks": st.lists(hook, max_size=2),
        "mounts": st.lists(mount, max_size=3),
        "intelRdt": rdt,
        "additionalGids": st.lists(u32, max_size=3),
    },
)
nonempty_edits = edits.filter(lambda e: any(e.values()) or "intelRdt" in e)
annotations = st.dictionaries(
    st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,3})?/[a-z][a-z0-9]{0,5}", fullmatch=True), text, max_size=2
)


@st.composite
def spec_docs(draw):
    names = draw(
        st.lists(
            st.from_regex(r"[a-z0-9][a-z0-9:._-]{0,5}[a-z0-9]", fullmatch=True),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    doc = {
        "cdiVersion": "1.1.0",
        "kind": draw(st.sampled_from(["vendor.com/gpu", "a.b/c.d", "x/y"])),
        "devices": [{"name": n, "containerEdits": draw(nonempty_edits)} for n in names],
    }
    if draw(st.booleans()):
        doc["annotations"] = draw(annotations)
    if draw(st.booleans()):
        doc["containerEdits"] = draw(edits)
    return doc


def _valid(doc):
    for e in [doc.get("containerEdits") or {}] + [d["containerEdits"] for d in doc["devices"]]:
        nets = e.get("netDevices") or []
        if len({n["hostInterfaceName"] for n in nets}) != len(nets) or len({n["name"] for n in nets}) != len(
            nets
        ):
            return False
    return True


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_docs(), st.sampled_from(["json", "yaml"]))
def test_parse_write_parse_identity(doc, fmt):
    if not _valid(doc):
        return
    spec = Spec.from_dict(doc)
    written = prepare_for_write(spec)
    out = render_spec(written, fmt)
    again = Spec.from_dict(parse_document(out, f"x.{fmt}"))  # type: ignore[arg-type]
    assert again.to_dict() == written  # write normalisation: minimum version, hostPath == path dropped
    # and the written form is a fixed point
    assert render_spec(prepare_for_write(again), fmt) == out
    assert parse_spec(out, f"x.{fmt}").to_dict() == again.to_dict()


def _strip_host_lookups(doc):
    """Device nodes must not need the host: give each a type and major (minimally specified)."""
    for e in [doc.get("containerEdits") or {}] + [d["containerEdits"] for d in doc["devices"]]:
        for n in e.get("deviceNodes") or []:
            n.setdefault("type", "c")
            n.setdefault("major", 1)
            n.pop("hostPath", None)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_docs(), st.data())
def test_apply_twice_is_apply_once(doc, data):
    if not _valid(doc):
        return
    _strip_host_lookups(doc)
    doc = {**doc, "cdiVersion": "1.1.0"}
    reg = Registry(spec_dirs=[], specs=[Spec.from_dict(doc)])
    name = reg.list_devices()[data.draw(st.integers(0, len(reg.list_devices()) - 1))]
    base: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {"env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "x-extra": {"keep": [1]},
    }
    once = copy.deepcopy(base)
    reg.inject_devices(once, [name])
    twice = copy.deepcopy(once)
    reg.inject_devices(twice, [name])
    # cgroup rules are appended each time by design (the reference never de-duplicates them)
    rules_once = once.get("linux", {}).get("resources", {}).pop("devices", [])
    rules_twice = twice.get("linux", {}).get("resources", {}).pop("devices", [])
    assert rules_twice == rules_once * 2
    # hooks are appended too (reference semantics); everything else is idempotent
    hooks_once, hooks_twice = once.pop("hooks", {}), twice.pop("hooks", {})
    assert {k: v * 2 for k, v in hooks_once.items()} == hooks_twice
    assert json.dumps(twice, sort_keys=True) == json.dumps(once, sort_keys=True)
    assert once["x-extra"] == {"keep": [1]}
