"""Golden CDI specs for every simulated profile and mode (GPUCTK_UPDATE_GOLDEN=1 rewrites them).

Host paths are rewritten from the temporary node root to /sim/<profile> with
`transform_root`, so the files are stable; the independent checks run on the
untransformed spec, against the real node.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from gpuctk.generate import GenerateOptions, generate_spec
from gpuctk.generate.render import render
from gpuctk.generate.transform import transform_root
from support.golden import UPDATE
from support.sim import check_spec_against_node

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "golden")
HOOK = "/usr/bin/gpuctk-hook"

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dgx-h100-nvml": ("dgx-h100", {}),
    "dgx-h100-management": ("dgx-h100", {"mode": "management"}),
    "dgx-h100-nvswitch": ("dgx-h100", {"mode": "nvswitch"}),
    "dgx-h100-imex": ("dgx-h100", {"mode": "imex"}),
    "dgx-h100-nvml-nvidia-cdi-hook": (
        "dgx-h100",
        {
            "mode": "nvml",
            "hook_path": "/usr/bin/nvidia-cdi-hook",
            "device_ids": ["0", "7"],
            "ldconfig_path": "/sbin/ldconfig",
        },
    ),
    "dgx-h100-nvml-nvidia-ctk-options": (
        "dgx-h100",
        {
            "mode": "nvml",
            "hook_path": "/usr/bin/nvidia-ctk",
            "device_ids": ["1"],
            "device_name_strategies": ["type-index"],
            "enabled_hooks": ["chmod"],
            "disabled_hooks": ["update-application-profile"],
            "feature_flags": ["no-additional-gids-for-device-nodes", "disable-ipc-discoverer"],
        },
    ),
    "dgx-a100-mig-nvml": ("dgx-a100-mig", {}),
    "dgx-a100-mig-management": ("dgx-a100-mig", {"mode": "management"}),
    "jetson-orin-csv": ("jetson-orin", {}),
    "wsl2-wsl": ("wsl2", {}),
    "no-gpu-management": ("no-gpu", {"mode": "management"}),
}


def _generate(sim_nodes, profile: str, overrides: dict) -> tuple[dict, dict, list[str]]:
    node = sim_nodes.get(profile)
    kw = {"driver_root": node.root, "inventory": node.inventory_path, "hook_path": HOOK, **overrides}
    spec, warnings = generate_spec(GenerateOptions(**kw))
    stable = transform_root(spec, node.root, f"/sim/{profile}", "host")
    return spec, stable, warnings


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_spec(case, sim_nodes):
    profile, overrides = CASES[case]
    spec, stable, _warnings = _generate(sim_nodes, profile, overrides)
    check_spec_against_node(spec)
    for fmt in ("yaml", "json"):
        path = os.path.join(GOLDEN, f"{case}.{fmt}")
        text = render(stable, fmt)
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        with open(path) as f:
            expected = f.read()
        assert text == expected, f"{path} differs; GPUCTK_UPDATE_GOLDEN=1 to regenerate"
    loaded_yaml = yaml.safe_load(expected if fmt == "yaml" else render(stable, "yaml"))
    with open(os.path.join(GOLDEN, f"{case}.json")) as f:
        assert json.load(f) == loaded_yaml


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_spec_is_valid_cdi(case):
    import gpuctk.cdi as cdi

    with open(os.path.join(GOLDEN, f"{case}.yaml")) as f:
        data = yaml.safe_load(f)
    assert cdi.validate_spec_dict(data, source=case) == []
    # structural checks that hold whatever the CDI library says
    vendor, _, cls = data["kind"].partition("/")
    assert vendor and cls
    assert data["devices"], "a CDI spec needs at least one device"
    names = [d["name"] for d in data["devices"]]
    assert len(names) == len(set(names))
    from gpuctk.cdi import minimum_version  # the one minimum-version function (tests/cdi/test_version.py)

    assert data["cdiVersion"] == minimum_version(data)


def test_golden_files_cover_every_profile():
    from gpuctk.sim import PROFILES

    profiles = {p for p, _ in CASES.values()}
    assert profiles == set(PROFILES)
    for case in CASES:
        for fmt in ("yaml", "json"):
            assert os.path.exists(os.path.join(GOLDEN, f"{case}.{fmt}"))


def test_cdi_validate_cli_accepts_goldens(capsys):
    from gpuctk.cli.main import build_parser, main

    parser = build_parser("cdi")
    cdi_sub = next(
        a
        for a in parser._subparsers._group_actions[0].choices["cdi"]._actions  # type: ignore[union-attr, index]
        if getattr(a, "choices", None) and "generate" in a.choices
    )
    assert "validate" in cdi_sub.choices
    for case in sorted(CASES):
        for fmt in ("yaml", "json"):
            assert main(["cdi", "validate", os.path.join(GOLDEN, f"{case}.{fmt}")]) == 0, (
                capsys.readouterr().err
            )
