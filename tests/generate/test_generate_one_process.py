"""One hook process for gpuctk's own hook (issue 15 item 4): when the spec names the
``gpuctk-hook`` of the gpuctk that generates it, the common edits' steps ride in ONE
``gpuctk-hook run-steps`` hook and the ``all`` device's by-path links in one create-symlinks
hook; with an upstream hook name the spec keeps upstream's one hook per step.

The checks below decode the combined argv with a decoder written here (not
gpuctk.hooks.steps) and compare it with the per-step spec the same generator writes for an
upstream-shaped path, whose goldens (tests/data/golden/*.json) are checked against upstream's
shapes independently (test_generate_reference_shapes.py)."""

from __future__ import annotations

import copy
import json
import os

import pytest

import gpuctk.generate.jit as jit
from gpuctk.generate import GenerateOptions, generate_spec
from gpuctk.generate.hooks import combine_hooks, expand_hooks, is_own_hook, own_hook_executable
from gpuctk.generate.render import render
from gpuctk.generate.transform import transform_root
from support.golden import check_golden

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "golden", "one-process")
STABLE_HOOK = "/usr/bin/gpuctk-hook"  # what the goldens name instead of this venv's path
OWN = own_hook_executable()


def _independent_decode(words: list[str]) -> list[list[str]]:
    """The documented encoding (docs/hooks.md): each step is its word count, then its words."""
    out, i = [], 0
    while i < len(words):
        n = int(words[i])
        assert n >= 1 and str(n) == words[i]
        out.append(words[i + 1 : i + 1 + n])
        assert len(out[-1]) == n
        i += 1 + n
    return out


def _gen(sim_nodes, profile: str, hook: str, **kw) -> dict:
    node = sim_nodes.get(profile)
    spec, _w = generate_spec(
        GenerateOptions(driver_root=node.root, inventory=node.inventory_path, hook_path=hook, **kw)
    )
    return transform_root(spec, node.root, f"/sim/{profile}", "host")


def _renamed(spec: dict, old: str, new: str) -> dict:
    spec = copy.deepcopy(spec)
    for edits in [spec["containerEdits"], *[d["containerEdits"] for d in spec["devices"]]]:
        for h in edits.get("hooks", []):
            if h["path"] == old:
                h["path"] = new
    return spec


def _step_list(hooks: list[dict]) -> list[list[str]]:
    """The steps a hook list runs, in order, each as [name, flag...], decoded independently."""
    steps = []
    for h in hooks:
        assert os.path.basename(h["path"]) == "gpuctk-hook" and h["args"][0] == "gpuctk-hook"
        if h["args"][1] == "run-steps":
            steps += _independent_decode(h["args"][2:])
        else:
            steps.append(h["args"][1:])
    return steps


def test_own_hook_detection(tmp_path):
    assert is_own_hook(OWN)
    link = tmp_path / "bin" / "gpuctk-hook"  # a launcher symlink, as `gpuctk install` lays out
    link.parent.mkdir()
    link.symlink_to(OWN)
    assert is_own_hook(str(link))
    upstream_name = tmp_path / "bin" / "nvidia-cdi-hook"  # gpuctk's launcher under upstream's name
    upstream_name.symlink_to(OWN)
    assert not is_own_hook(str(upstream_name))
    assert not is_own_hook("/usr/bin/gpuctk-hook")  # not here: whatever runs there later
    other = tmp_path / "other" / "gpuctk-hook"  # another gpuctk's hook: may be older
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert not is_own_hook(str(other))
    assert not is_own_hook("gpuctk-hook")


@pytest.mark.parametrize(
    ("case", "profile", "kw"),
    [
        ("dgx-h100-nvml", "dgx-h100", {}),
        ("dgx-a100-mig-nvml", "dgx-a100-mig", {}),
        ("dgx-h100-nvml-chmod", "dgx-h100", {"enabled_hooks": ["chmod"], "device_ids": ["0", "7"]}),
    ],
)
def test_combined_spec_runs_exactly_the_per_step_argv(sim_nodes, case, profile, kw):
    per_step = _gen(sim_nodes, profile, STABLE_HOOK, **kw)  # not this gpuctk's hook: upstream shape
    combined = _renamed(_gen(sim_nodes, profile, OWN, **kw), OWN, STABLE_HOOK)
    for fmt in ("json", "yaml"):
        check_golden(os.path.join(GOLDEN, f"{case}.{fmt}"), render(combined, fmt))
    # common edits: one process whose steps are the per-step hooks' argv, same order
    c_hooks, p_hooks = combined["containerEdits"]["hooks"], per_step["containerEdits"]["hooks"]
    assert len(c_hooks) == 1 and c_hooks[0]["args"][1] == "run-steps"
    assert _step_list(c_hooks) == [h["args"][1:] for h in p_hooks]
    assert {k: v for k, v in c_hooks[0].items() if k != "args"} == {
        k: v for k, v in p_hooks[0].items() if k != "args"
    }
    # everything but hooks is the same spec
    strip = lambda s: json.loads(  # noqa: E731
        json.dumps(s).replace('"hooks"', '"_h"')
    )
    for d in [*strip(combined)["devices"], strip(combined)]:
        d.get("containerEdits", {}).pop("_h", None)
    a, b = strip(combined), strip(per_step)
    for s in (a, b):
        s["containerEdits"].pop("_h", None)
        for d in s["devices"]:
            d["containerEdits"].pop("_h", None)
    assert a == b
    # devices: a single device keeps its own one hook; `all` runs the union of the links once
    c_devs = {d["name"]: d["containerEdits"].get("hooks", []) for d in combined["devices"]}
    p_devs = {d["name"]: d["containerEdits"].get("hooks", []) for d in per_step["devices"]}
    assert c_devs.keys() == p_devs.keys()
    for name, hooks in p_devs.items():
        if name != "all":
            assert c_devs[name] == hooks
            continue
        assert len(c_devs[name]) == (1 if hooks else 0)
        if hooks:
            links = [a for h in hooks for a in h["args"][2:]]
            assert _step_list(c_devs[name]) == [["create-symlinks", *links]]


def test_upstream_hook_names_keep_one_hook_per_step(sim_nodes, tmp_path):
    """Even when nvidia-cdi-hook / nvidia-ctk are gpuctk's launchers, their specs stay upstream-shaped."""
    for name in ("nvidia-cdi-hook", "nvidia-ctk"):
        link = tmp_path / name
        link.symlink_to(OWN)
        spec = _gen(sim_nodes, "dgx-h100", str(link))
        args = [a for h in spec["containerEdits"]["hooks"] for a in h["args"]]
        assert "run-steps" not in args and len(spec["containerEdits"]["hooks"]) == 6
        # the same bytes as for a path that is not gpuctk's at all
        other = _gen(sim_nodes, "dgx-h100", f"/usr/bin/{name}")
        assert _renamed(spec, str(link), f"/usr/bin/{name}") == other


def test_jit_spec_for_own_hook_is_one_process(sim_nodes, tmp_path, monkeypatch):
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(tmp_path / "cache"))
    jit._memo.clear()
    node = sim_nodes.get("dgx-h100")
    try:
        own = jit.jit_spec(["all"], {"nvidia-ctk": {"path": OWN}}, driver_root=node.root)
        upstream = jit.jit_spec(
            ["all"], {"nvidia-ctk": {"path": "/usr/bin/nvidia-ctk"}}, driver_root=node.root
        )
    finally:
        jit._memo.clear()
    assert [h["args"][1] for h in own["containerEdits"]["hooks"]] == ["run-steps"]
    assert [len(d["containerEdits"]["hooks"]) for d in own["devices"]] == [1]
    up_hooks = upstream["containerEdits"]["hooks"]
    assert up_hooks[0]["args"][:3] == ["nvidia-ctk", "hook", "create-symlinks"]
    assert _step_list(_renamed(own, OWN, "/x/gpuctk-hook")["containerEdits"]["hooks"]) == [
        h["args"][2:] for h in up_hooks
    ]


def _hook(path: str, *args: str, **extra) -> dict:
    return {
        "hookName": "createContainer",
        "path": path,
        "args": [os.path.basename(path), *args],
        "env": ["NVIDIA_CTK_DEBUG=false"],
        **extra,
    }


def test_combine_and_expand_are_inverse_and_respect_boundaries():
    g = "/x/gpuctk-hook"
    hooks = [
        _hook(g, "create-symlinks", "--link", "a::/b"),
        _hook(g, "update-ldcache", "--folder", "--"),  # a word that looks like a separator
        _hook("/usr/bin/nvidia-cdi-hook", "chmod", "--mode", "755", "--path", "/d"),  # not ours: a boundary
        _hook(g, "noop"),
        _hook(g, "chmod", "--mode", "755", "--path", "/e", timeout=5),  # own timeout: kept alone
        _hook(g, "update-application-profile"),
        {**_hook(g, "update-application-profile"), "env": []},  # other env: another run
    ]
    combined = combine_hooks(hooks)
    assert [h["args"][1] for h in combined] == [
        "run-steps",
        "chmod",
        "noop",
        "chmod",
        "update-application-profile",
        "update-application-profile",
    ]
    assert combined[0]["args"][2:] == [
        "3",
        "create-symlinks",
        "--link",
        "a::/b",
        "3",
        "update-ldcache",
        "--folder",
        "--",
    ]
    assert expand_hooks(combined) == hooks
    assert expand_hooks(hooks) == hooks
    assert combine_hooks(combine_hooks(hooks)) == combined


def test_runsc_ready_spec_expands_the_combined_hook(sim_nodes):
    """A runsc-ready spec routes each step through nvidia-cdi-hook: the combined hook is
    expanded first, so the result is the one of the per-step spec."""
    from gpuctk.sandbox.ready import runsc_ready_cdi_spec

    per_step = _gen(sim_nodes, "dgx-h100", "/opt/t/gpuctk-hook")
    combined = _renamed(_gen(sim_nodes, "dgx-h100", OWN), OWN, "/opt/t/gpuctk-hook")
    a, _wa = runsc_ready_cdi_spec(per_step)
    b, _wb = runsc_ready_cdi_spec(combined)
    assert a["containerEdits"] == b["containerEdits"]
    assert all("run-steps" not in h["args"] for h in b["containerEdits"]["hooks"])
    assert [h["args"][1] for h in b["containerEdits"]["hooks"]] == [
        "create-symlinks",
        "create-symlinks",
        "enable-cuda-compat",
        "update-ldcache",
        "update-application-profile",
    ]


def _inject(cdi_spec: dict, names: list[str]) -> list[dict]:
    """The createContainer entries the CDI library adds for ``names`` (common edits first)."""
    from gpuctk.cdi import Registry, Spec

    spec = Spec.from_dict(cdi_spec, source="test")
    oci: dict = {"ociVersion": "1.0.2", "process": {"args": ["true"]}, "root": {"path": "rootfs"}}
    Registry(spec_dirs=[], specs=[spec]).inject_devices(oci, [f"{spec.kind}={n}" for n in names])
    return oci["hooks"]["createContainer"]


@pytest.mark.parametrize("names", [["0", "7"], ["3"], ["all"]])
def test_shim_merges_the_injected_hooks_into_one_process(sim_nodes, names):
    """After CDI chose the devices, the shim runs the common steps and exactly the requested
    devices' links as ONE process: the steps are the per-step spec's hooks for those devices,
    in CDI's order (common edits, then each device)."""
    from gpuctk.generate.hooks import merge_injected_hooks

    node = sim_nodes.get("dgx-h100")
    own_spec, _w = generate_spec(
        GenerateOptions(driver_root=node.root, inventory=node.inventory_path, hook_path=OWN)
    )
    steps_spec, _w = generate_spec(
        GenerateOptions(
            driver_root=node.root, inventory=node.inventory_path, hook_path="/nonexistent/gpuctk-hook"
        )
    )
    merged = merge_injected_hooks(_inject(own_spec, names))
    assert len(merged) == 1 and merged[0]["path"] == OWN and merged[0]["args"][1] == "run-steps"
    expected = [h["args"][1:] for h in _inject(steps_spec, names)]
    if names == ["all"]:  # the `all` device's links were already one hook: compare the words
        flat = lambda steps: [a for s in steps for a in s if a != "create-symlinks"]  # noqa: E731
        assert flat(_independent_decode(merged[0]["args"][2:])) == flat(expected)
    else:
        assert _independent_decode(merged[0]["args"][2:]) == expected
    dri = [a for a in merged[0]["args"] if "/dev/dri/by-path/" in a]
    n_gpus = 8 if names == ["all"] else len(names)
    assert len(dri) == 2 * n_gpus  # card + render of each requested GPU, no other GPU's


def test_shim_merge_keeps_foreign_hooks_and_timeouts_as_boundaries(tmp_path):
    from gpuctk.generate.hooks import merge_injected_hooks

    other = tmp_path / "gpuctk-hook"  # another gpuctk's hook: not merged
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    e = lambda path, *a, **kw: {"path": path, "args": [os.path.basename(path), *a], **kw}  # noqa: E731
    entries = [
        e(OWN, "create-symlinks", "--link", "a::/b"),
        e(OWN, "run-steps", "1", "update-application-profile"),
        e("/bin/sh", "-c", "true"),
        e(OWN, "noop"),
        e(str(other), "noop"),
        e(OWN, "chmod", "--mode", "755", "--path", "/x"),
        e(OWN, "noop", timeout=3),
    ]
    merged = merge_injected_hooks(entries)
    assert merged[0] == e(
        OWN, "run-steps", "3", "create-symlinks", "--link", "a::/b", "1", "update-application-profile"
    )
    assert merged[1:] == entries[2:]
    assert all("hookName" not in h for h in merged)


def test_shim_merges_gpuctk_launchers_under_upstream_names(sim_nodes, tmp_path):
    """A node set up by `gpuctk install`: the spec names <toolkit>/nvidia-ctk (the marked sh
    wrapper exec'ing this gpuctk-hook) or <toolkit>/nvidia-cdi-hook (a symlink to it). The spec
    keeps upstream's shape; the shim, which sees that the launcher is gpuctk's right now, runs
    the injected steps as one process of gpuctk-hook. A foreign binary under those names is
    never merged."""
    from gpuctk.generate.hooks import merge_injected_hooks
    from gpuctk.install.launchers import nvidia_ctk_wrapper

    tk = tmp_path / "tk"
    tk.mkdir()
    (tk / "nvidia-ctk").write_text(nvidia_ctk_wrapper(os.path.dirname(OWN)))
    (tk / "nvidia-ctk").chmod(0o755)
    (tk / "nvidia-cdi-hook").symlink_to(OWN)
    node = sim_nodes.get("dgx-h100")
    for name, skip in (("nvidia-ctk", 3), ("nvidia-cdi-hook", 2)):
        path = str(tk / name)
        spec, _w = generate_spec(
            GenerateOptions(
                driver_root=node.root, inventory=node.inventory_path, hook_path=path, device_ids=["2"]
            )
        )
        entries = _inject(spec, ["2"])
        assert len(entries) == 7 and all(e["path"] == path for e in entries)  # upstream's shape
        merged = merge_injected_hooks(entries)
        assert (
            len(merged) == 1
            and merged[0]["path"] == OWN
            and merged[0]["args"][:2] == ["gpuctk-hook", "run-steps"]
        )
        assert _independent_decode(merged[0]["args"][2:]) == [e["args"][skip - 1 :] for e in entries]
    foreign = tmp_path / "nvidia" / "nvidia-ctk"  # NVIDIA's own binary: left alone
    foreign.parent.mkdir()
    foreign.write_text("#!/bin/sh\nexec /usr/bin/true\n")
    foreign.chmod(0o755)
    entries = [
        {"path": str(foreign), "args": ["nvidia-ctk", "hook", "noop"]},
        {"path": str(foreign), "args": ["nvidia-ctk", "hook", "noop"]},
    ]
    assert merge_injected_hooks(entries) == entries
    lone = [{"path": str(tk / "nvidia-cdi-hook"), "args": ["nvidia-cdi-hook", "noop"]}]
    assert merge_injected_hooks(lone) == lone  # nothing to merge with: kept as given
