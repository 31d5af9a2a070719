"""Every rule of the runsc + nvproxy contract (A.8) against its fixture specs, and the three flows."""

from __future__ import annotations

import glob
import json
import os

import gvisor_fixtures as fx
import pytest

from gpuctk.sandbox.gvisor import analyze, check_spec, load_driver_table
from support.golden import UPDATE

RULES_DIR = os.path.join(fx.DATA, "rules")
FLOWS_DIR = os.path.join(fx.DATA, "flows")
ALL_RULES = (
    [f"C{i}" for i in range(1, 9)]
    + [f"L{i}" for i in range(1, 9)]
    + [f"D{i}" for i in range(1, 8)]
    + [f"S{i}" for i in range(1, 6)]
)
# Rules whose worst outcome is not "fail": host-side facts the spec cannot show (L5), informational
# notes (L7, S5), and caveats that do not stop the container (L6, L8, D5, D6). Their non-passing
# case is a warn; L7 has only a passing one and L5/S5 only a warning.
WORST = {"L5": "warn", "L6": "warn", "L7": "pass", "L8": "warn", "D5": "warn", "D6": "warn", "S5": "warn"}


def _dump(obj: dict) -> str:
    return json.dumps(obj, indent=2) + "\n"


def _expected_files() -> dict[str, str]:
    files = {os.path.join(FLOWS_DIR, f"{name}.json"): _dump(make()) for name, make in fx.FLOWS.items()}
    for name in fx.CASES:
        spec, toml, driver = fx.build(name)
        files[os.path.join(RULES_DIR, f"{name}.json")] = _dump(spec)
        if toml is not None:
            files[os.path.join(RULES_DIR, f"{name}.runsc.toml")] = toml
        if driver is not None:
            files[os.path.join(RULES_DIR, f"{name}.driver")] = driver + "\n"
    return files


def test_fixture_files_match_the_table():
    expected = _expected_files()
    if UPDATE:
        for old in glob.glob(os.path.join(RULES_DIR, "*")) + glob.glob(os.path.join(FLOWS_DIR, "*")):
            if old not in expected:
                os.unlink(old)
        for path, text in expected.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    on_disk = set(glob.glob(os.path.join(RULES_DIR, "*")) + glob.glob(os.path.join(FLOWS_DIR, "*")))
    assert on_disk == set(expected), "fixture files out of date: GPUCTK_UPDATE_GOLDEN=1 to regenerate"
    for path, text in expected.items():
        with open(path) as f:
            assert f.read() == text, f"{path} differs from gvisor_fixtures.py"


def load_case(name: str) -> tuple[dict, dict | None, str | None]:
    import tomllib

    base = os.path.join(RULES_DIR, name)
    with open(base + ".json") as f:
        spec = json.load(f)
    toml = None
    if os.path.exists(base + ".runsc.toml"):
        with open(base + ".runsc.toml", "rb") as fb:
            toml = tomllib.load(fb)
    driver = None
    if os.path.exists(base + ".driver"):
        with open(base + ".driver") as f:
            driver = f.read().strip()
    return spec, toml, driver


def _finding(findings, rule):
    hits = [f for f in findings if f.rule == rule]
    assert len(hits) == 1, f"expected one {rule} finding, got {[f.rule for f in findings]}"
    return hits[0]


@pytest.mark.parametrize("name", sorted(fx.CASES))
def test_rule_fixture(name):
    rule, status = name.split("-")[:2]
    spec, toml, driver = load_case(name)
    finding = _finding(analyze(spec, driver, runsc_toml=toml).findings, rule)
    assert finding.status == status, f"{name}: {finding}"
    assert finding.reason
    if status != "pass":
        assert finding.fix, f"{name}: a {status} needs a fix"


def test_every_rule_has_a_passing_and_a_failing_case():
    for rule in ALL_RULES:
        statuses = {n.split("-")[1] for n in fx.CASES if n.split("-")[0] == rule}
        if rule in WORST:
            assert WORST[rule] in statuses, rule
            if rule not in ("L5", "L7", "S5"):
                assert "pass" in statuses, rule
        else:
            assert "pass" in statuses and "fail" in statuses, f"{rule}: {statuses}"


@pytest.mark.parametrize("flow", ["cdi", "legacy", "csv"])
def test_flow_fixture_is_detected_and_passes(flow):
    with open(os.path.join(FLOWS_DIR, f"{flow}.json")) as f:
        spec = json.load(f)
    report = analyze(spec, "615.62.00" if flow == "csv" else fx.DRIVER)
    assert report.flow == flow
    assert report.gpu_detected
    assert report.runs_nvidia_container_cli is (flow == "legacy")
    assert not report.failed, [f for f in report.findings if f.status == "fail"]
    rules = {f.rule for f in report.findings}
    family = {"cdi": "D", "legacy": "L", "csv": "S"}[flow]
    assert {r for r in ALL_RULES if r[0] == family} - {"L8"} <= rules
    assert {r for r in ALL_RULES if r[0] == "C"} <= rules


def test_rules_of_other_flows_are_not_reported():
    cdi = {f.rule for f in check_spec(fx.cdi_flow(), fx.DRIVER)}
    legacy = {f.rule for f in check_spec(fx.legacy_flow(), fx.DRIVER)}
    assert not any(r[0] in "LS" for r in cdi)
    assert not any(r[0] in "DS" for r in legacy)


def test_spec_without_gpu_is_left_alone():
    spec = fx._base([])
    report = analyze(spec)
    assert report.flow == "none" and not report.gpu_detected and not report.failed
    assert [f.rule for f in report.findings] == ["C1"]


def test_pause_container_of_a_gpu_pod_gets_the_d7_hint():
    spec = fx._annot(fx._base([]), **{"io.kubernetes.cri.container-type": "sandbox"})
    finding = _finding(check_spec(spec), "D7")
    assert finding.status == "warn" and 'nvproxy = "true"' in finding.fix


def test_d2_leak_names_the_duplicate_entries_and_the_fix():
    spec, _, driver = load_case("D2-fail-isolation-leak")
    report = analyze(spec, driver)
    assert report.runs_nvidia_container_cli and report.effective_visible_devices == "all"
    d2 = _finding(report.findings, "D2")
    assert d2.status == "fail"
    assert "--device=all" in d2.reason and "all, void" in d2.reason
    assert 'single "void" entry' in d2.fix and "sandbox" in d2.fix


def test_single_void_replacing_the_value_is_not_a_leak():
    spec = fx.cdi_flow()
    assert fx._env(spec)["process"]["env"].count("NVIDIA_VISIBLE_DEVICES=void") == 1
    assert _finding(check_spec(spec, fx.DRIVER), "D2").status == "pass"


def test_legacy_hook_plus_cdi_edits_leaks_too():
    spec = fx._env(fx.cdi_flow(), "NVIDIA_VISIBLE_DEVICES=all", drop="NVIDIA_VISIBLE_DEVICES")
    spec["hooks"]["prestart"] = [
        {
            "path": "/usr/bin/nvidia-container-runtime-hook",
            "args": ["nvidia-container-runtime-hook", "prestart"],
        }
    ]
    spec["hooks"]["createContainer"] = [
        fx._hook("update-ldcache", "--folder", fx.LIB, path="/usr/bin/nvidia-ctk")
    ]
    assert _finding(check_spec(spec, fx.DRIVER), "D2").status == "fail"


@pytest.mark.parametrize(
    "env, expected",
    [
        (["NVIDIA_VISIBLE_DEVICES=all"], "all"),
        (["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=void"], "all"),
        (["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=1"], "1"),
        (["NVIDIA_VISIBLE_DEVICES=void"], "void"),
        (["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_VISIBLE_DEVICES=void"], "void"),
        ([], None),
    ],
)
def test_cdi_kind_effective_visible_devices(env, expected):
    from gpuctk.sandbox.contract import cdi_effective_visible_devices

    assert cdi_effective_visible_devices(env) == expected


def test_legacy_lookup_quirk_any_malformed_entry_unsets_everything():
    from gpuctk.sandbox.contract import runsc_env_lookup

    assert runsc_env_lookup(["NVIDIA_VISIBLE_DEVICES=0"], "NVIDIA_VISIBLE_DEVICES") == "0"
    assert runsc_env_lookup(["NVIDIA_VISIBLE_DEVICES=0", "X"], "NVIDIA_VISIBLE_DEVICES") is None


def test_nvidia_container_toolkit_alias_is_not_a_gpu_signal():
    spec, _, driver = load_case("L1-fail-toolkit-alias")
    report = analyze(spec, driver)
    assert report.flow == "legacy" and not report.gpu_detected
    assert _finding(report.findings, "C1").status == "fail"


@pytest.mark.parametrize(
    "path, backed",
    [
        ("/dev/nvidiactl", True),
        ("/dev/nvidia-uvm", True),
        ("/dev/nvidia0", True),
        ("/dev/nvidia247", True),
        ("/dev/nvidia248", False),
        ("/dev/nvidia-uvm-tools", False),
        ("/dev/nvidia-modeset", False),
        ("/dev/nvidia-caps/nvidia-cap1", False),
        ("/dev/dri/renderD128", False),
        ("/dev/nvhost-gpu", False),
    ],
)
def test_nodes_nvproxy_backs(path, backed):
    from gpuctk.sandbox.contract import is_backed_by_nvproxy

    assert is_backed_by_nvproxy(path) is backed


def test_shipped_driver_list_is_dated_and_sourced():
    table = load_driver_table()
    assert table["date"] == "2026-08-21" and "version.go" in table["source"]
    assert "580.105.08" in table["supported"] and "550.90.07" in table["unsupported"]
    assert "615.62.00" in table["arm64_only"]
    assert not set(table["supported"]) & set(table["unsupported"])


def test_driver_list_can_be_replaced_without_code(tmp_path):
    path = tmp_path / "drivers.json"
    path.write_text(
        json.dumps({"date": "2027-01-01", "source": "test", "supported": ["999.1.2"], "unsupported": []})
    )
    table = load_driver_table(str(path))
    assert _finding(check_spec(fx.cdi_flow(), "999.1.2", driver_table=table), "C3").status == "pass"
    assert _finding(check_spec(fx.cdi_flow(), fx.DRIVER, driver_table=table), "C3").status == "fail"


def test_nearest_supported_driver_is_suggested():
    finding = _finding(check_spec(fx.cdi_flow(), "570.211.01"), "C3")
    assert "570.195.03" in finding.fix and "2026-08-21" in finding.reason


def test_check_does_not_modify_the_spec():
    spec = fx._env(fx.cdi_flow(), "BROKEN")
    before = json.dumps(spec, sort_keys=True)
    check_spec(spec, fx.DRIVER)
    assert json.dumps(spec, sort_keys=True) == before


def test_docs_rule_table_maps_every_rule_to_existing_tests():
    import re

    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "docs", "gvisor.md")) as f:
        doc = f.read()
    sources = ""
    for name in os.listdir(here):
        if name.endswith(".py"):
            with open(os.path.join(here, name)) as f:
                sources += f.read()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| ([CLDS]\d) \|.*$", doc, re.M)}
    assert sorted(rows) == sorted(ALL_RULES)
    for rule, row in rows.items():
        cases = re.findall(r"`([CLDS]\d-[a-z0-9-]+)`", row)
        assert cases and all(c in fx.CASES for c in cases), row
        assert {c for c in fx.CASES if c.split("-")[0] == rule} == set(cases), (
            f"{rule}: table lists other cases"
        )
        for test in re.findall(r"`(test_[a-z0-9_]+)`", row):
            assert f"def {test}(" in sources, test
