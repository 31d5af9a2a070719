"""`snapshot` and `doctor` read the decision record `--cdi auto` wrote instead of guessing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gpuctk.engines import status
from gpuctk.engines.decision import EngineFacts, decide
from gpuctk.engines.detect import assemble
from gpuctk.snapshot.collect import SnapshotOptions, collect_decision
from gpuctk.snapshot.doctor import run_checks


def _engine(version: Any, default: str, gpu: list[str], in_config: Any = None) -> dict[str, Any]:
    return assemble(
        "containerd",
        version,
        "",
        {
            "cdi_enabled_in_config": in_config,
            "spec_dirs": ["/etc/cdi"],
            "runtimes": ["runc", *gpu],
            "gpu_runtimes": gpu,
            "default_runtime": default,
        },
    )


def _record(version: tuple[int, int, int]) -> dict[str, Any]:
    import json

    text = status.render(
        engine="containerd",
        version=".".join(map(str, version)),
        decision=decide(EngineFacts("containerd", version)),
        config="/etc/containerd/config.toml",
    )
    return {"path": "/x", **json.loads(text)}


def _checks(snap: dict[str, Any]) -> dict[str, Any]:
    return {c.name: c for c in run_checks({"kind": "GpuctkSnapshot", **snap}) if c.name == "cdi-decision"}


def test_record_collected_from_the_host_root(tmp_path: Path) -> None:
    path = status.status_file(str(tmp_path))
    assert path == os.path.join(str(tmp_path), "run/nvidia/validations/gpuctk-cdi-decision.json")
    assert collect_decision(SnapshotOptions(host_root=str(tmp_path))) is None
    os.makedirs(os.path.dirname(path))
    status.write(path, status.render(engine="containerd", version="1.6.20",
                                     decision=decide(EngineFacts("containerd", (1, 6, 20))), config="/c"))  # fmt: skip
    got = collect_decision(SnapshotOptions(host_root=str(tmp_path)))
    assert got is not None and got["decision"]["path"] == "nvidia-runtime-cdi"
    Path(path).write_text("{not json")
    bad = collect_decision(SnapshotOptions(host_root=str(tmp_path)))
    assert bad is not None and "cannot read the decision record" in bad["error"]


def test_doctor_passes_when_the_16_decision_is_applied() -> None:
    checks = _checks(
        {"engines": [_engine((1, 6, 20), "nvidia", ["nvidia"])], "cdi_decision": _record((1, 6, 20))}
    )
    assert checks["cdi-decision"].status == "pass"
    assert "nvidia-runtime-cdi" in checks["cdi-decision"].message


def test_doctor_fails_when_nvidia_is_not_the_default_any_more() -> None:
    checks = _checks(
        {"engines": [_engine((1, 6, 20), "runc", ["nvidia"])], "cdi_decision": _record((1, 6, 20))}
    )
    c = checks["cdi-decision"]
    assert c.status == "fail" and "not the default" in c.message
    assert c.fix == "gpuctk runtime configure --runtime containerd --cdi auto"


def test_doctor_warns_after_an_engine_upgrade() -> None:
    checks = _checks(
        {"engines": [_engine((1, 7, 20), "nvidia", ["nvidia"], True)], "cdi_decision": _record((1, 6, 20))}
    )
    c = checks["cdi-decision"]
    assert c.status == "warn" and "1.6.20" in c.message and "1.7.20" in c.message


def test_doctor_fails_native_decision_with_cdi_off() -> None:
    rec = _record((1, 7, 20))
    assert rec["decision"]["path"] == "native"
    checks = _checks({"engines": [_engine((1, 7, 20), "runc", ["nvidia"], False)], "cdi_decision": rec})
    assert checks["cdi-decision"].status == "fail" and "CDI is not enabled" in checks["cdi-decision"].message


def test_no_record_no_decision_check() -> None:
    assert _checks({"engines": [_engine((1, 6, 20), "runc", [])]}) == {}


@pytest.mark.parametrize("version", [(1, 6, 20), (2, 0, 11)])
def test_k8s_manifests_from_the_node_record(tmp_path: Path, capsys: Any, version: Any) -> None:
    from gpuctk.cli.main import main

    path = str(tmp_path / "rec.json")
    d = decide(EngineFacts("containerd", version))
    status.write(
        path, status.render(engine="containerd", version=".".join(map(str, version)), decision=d, config="/c")
    )
    assert (
        main(["k8s", "manifests", "--node-record", path, "--only", "device-plugin-values", "-o", "json"]) == 0
    )
    out = capsys.readouterr().out
    assert ",".join(d.device_list_strategy) in out
    assert (d.cdi_annotation_prefix == "nvidia.cdi.k8s.io/") is ("nvidia.cdi.k8s.io/" in out)


def test_plan_takes_the_record_not_a_new_guess(tmp_path: Path, capsys: Any) -> None:
    import json

    from gpuctk.cli.main import main

    path = str(tmp_path / "rec.json")
    # `--cdi off` on 1.6: the legacy path; a fresh plan for 1.6 would pick nvidia-runtime-cdi
    d = decide(EngineFacts("containerd", (1, 6, 20), cdi_wanted=False))
    status.write(path, status.render(engine="containerd", version="1.6.20", decision=d, config="/c"))
    assert main(["k8s", "plan", "--node-record", path, "-o", "json"]) == 0
    (g,) = json.loads(capsys.readouterr().out)["groups"]
    assert (g["decision"]["path"], g["decision_source"]) == ("legacy", "node record")
    assert g["gpu_workload"]["runtimeClassName"] == "nvidia"
