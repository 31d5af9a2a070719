"""The native-CDI decision, row by row (engine facts in, decision out), with its reasons.

Each row's expectation is written out here from the design it implements (the GPU
Operator's shipped CDI mode, NVIDIA/gpu-operator PR #1285 for engines without native CDI,
the engines' documented CDI versions), not taken from the code's output.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpuctk.engines.decision import EngineFacts, decide, render
from gpuctk.engines.detect import assemble

N = "nvidia.cdi.k8s.io/"
C = "cdi.k8s.io/"

# id -> (facts, row, path, nvidia default, enable_cdi, container_annotations, strategy, prefix,
#        needs runtimeClassName, words the reasons must contain)
ROWS: dict[str, tuple[EngineFacts, int, str, bool, bool, list[str], list[str], str | None, bool, str]] = {
    "containerd-2.0": (
        EngineFacts("containerd", (2, 0, 5)),
        1,
        "native",
        False,
        False,
        [],
        ["cdi-cri"],
        C,
        False,
        "enables CDI by default",
    ),
    "containerd-2.3-cdi-off": (
        EngineFacts("containerd", (2, 3, 4), cdi_in_config=False),
        1,
        "native",
        False,
        True,
        [],
        ["cdi-cri"],
        C,
        False,
        "enable_cdi = true is written",
    ),
    "containerd-2.0-cdi-off-unmanaged": (
        EngineFacts("containerd", (2, 0, 5), cdi_in_config=False, engine_managed=False),
        3,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "dropped silently",
    ),
    "containerd-1.7.12": (
        EngineFacts("containerd", (1, 7, 12), cdi_in_config=False),
        2,
        "native",
        False,
        True,
        [],
        ["cdi-cri"],
        C,
        False,
        "off by default",
    ),
    "containerd-1.7.12-unmanaged-unknown": (
        EngineFacts("containerd", (1, 7, 12), engine_managed=False),
        3,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "not known to be on",
    ),
    "containerd-1.7.1": (
        EngineFacts("containerd", (1, 7, 1)),
        4,
        "native",
        False,
        True,
        [],
        ["cdi-annotations"],
        C,
        False,
        "annotations only",
    ),
    "containerd-1.6-cdi-wanted": (
        EngineFacts("containerd", (1, 6, 20)),
        5,
        "nvidia-runtime-cdi",
        True,
        False,
        [N + "*"],
        ["envvar", "cdi-annotations"],
        N,
        False,
        "default runtime, in cdi mode",
    ),
    "containerd-1.6-legacy": (
        EngineFacts("containerd", (1, 6, 20), cdi_wanted=False),
        5,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "CDI not wanted",
    ),
    "containerd-1.7-legacy": (
        EngineFacts("containerd", (1, 7, 12), cdi_wanted=False),
        3,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "CDI not wanted",
    ),
    "crio-1.29": (
        EngineFacts("crio", (1, 29, 1)),
        6,
        "native",
        False,
        False,
        [],
        ["cdi-cri"],
        C,
        False,
        "1.23.2",
    ),
    "crio-1.25-no-cri-field": (
        EngineFacts("crio", (1, 25, 0)),
        6,
        "native",
        False,
        False,
        [],
        ["cdi-annotations"],
        C,
        False,
        "1.23.2",
    ),
    "crio-1.22": (
        EngineFacts("crio", (1, 22, 0)),
        7,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        False,
        "prestart hook",
    ),
    "crio-legacy": (
        EngineFacts("crio", (1, 29, 1), cdi_wanted=False),
        7,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        False,
        "prestart hook",
    ),
    "nri-containerd-1.7": (
        EngineFacts("containerd", (1, 7, 12), nri=True),
        8,
        "native",
        False,
        False,
        [],
        ["cdi-annotations", "cdi-cri"],
        C,
        False,
        "NRI",
    ),
    "docker-20.10": (
        EngineFacts("docker", (20, 10, 24)),
        9,
        "legacy",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "--runtime nvidia",
    ),
    "docker-25": (
        EngineFacts("docker", (25, 0, 3)),
        9,
        "native",
        False,
        True,
        [],
        ["envvar"],
        None,
        True,
        "features.cdi",
    ),
    "docker-28.2": (
        EngineFacts("docker", (28, 2, 0)),
        9,
        "native",
        False,
        False,
        [],
        ["envvar"],
        None,
        True,
        "cri-dockerd",
    ),
    "unknown-version": (
        EngineFacts("containerd", None),
        10,
        "undecided",
        False,
        False,
        [],
        [],
        None,
        False,
        "no decision",
    ),
    "unknown-engine": (
        EngineFacts("rkt", (1, 0, 0)),
        10,
        "undecided",
        False,
        False,
        [],
        [],
        None,
        False,
        "no decision",
    ),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_decision_row(name: str) -> None:
    facts, row, path, default, enable, annotations, strategy, prefix, rc, why = ROWS[name]
    d = decide(facts)
    text = render(d)
    print(f"{name}:\n{text}")  # the reasons, shown with -s
    assert (d.row, d.path) == (row, path)
    assert d.nvidia_default is default
    assert d.enable_cdi is enable
    assert d.container_annotations == annotations
    assert d.device_list_strategy == strategy
    assert d.cdi_annotation_prefix == prefix
    assert d.needs_runtime_class is rc
    assert d.reasons and why in " ".join(d.reasons)
    assert f"row {row}" in text and all(r in text for r in d.reasons)


def test_nvidia_runtime_cdi_row_shim_settings() -> None:
    d = decide(EngineFacts("containerd", (1, 6, 20)))
    assert d.shim_mode == "cdi" and d.annotation_prefixes == [N]
    assert not d.cdi_keys_allowed  # containerd 1.6 knows no enable_cdi / cdi_spec_dirs


def test_nri_makes_no_engine_edits() -> None:
    assert decide(EngineFacts("containerd", (2, 0, 0), nri=True)).engine_edits is False
    assert decide(EngineFacts("containerd", (2, 0, 0))).engine_edits is True


def _report(engine: str, version: Any, in_config: Any = None) -> dict[str, Any]:
    facts = {
        "cdi_enabled_in_config": in_config,
        "spec_dirs": ["/etc/cdi"],
        "runtimes": ["runc"],
        "gpu_runtimes": [],
        "default_runtime": "runc",
    }
    return assemble(engine, version, "", facts)


def test_detect_on_16_recommends_the_complete_command() -> None:
    """Defect 3: the printed command must carry the annotation prefix, not only --set-as-default."""
    rec = _report("containerd", (1, 6, 20))["recommendation"]
    assert rec["command"] == (
        "gpuctk runtime configure --runtime containerd --set-as-default --cdi-annotation-prefix nvidia.cdi.k8s.io/"
    )
    assert rec["decision"]["row"] == 5


@pytest.mark.parametrize(
    "runtime_version,in_config",
    [
        ("containerd://1.6.28-1", None),
        ("containerd://1.7.12-0ubuntu2~22.04.1", True),
        ("containerd://2.0.5", None),
        ("containerd://1.7.11-k3s2", True),
        ("cri-o://1.29.1", None),
        ("docker://20.10.24", None),
    ],
)
def test_plan_and_detect_agree(runtime_version: str, in_config: Any) -> None:
    """Defect 4: `k8s plan` (CDI wanted) and `runtime detect` decide the same way."""
    from gpuctk.engines.versions import parse_runtime_version
    from gpuctk.k8s.facts import facts_from_document
    from gpuctk.k8s.planner import plan

    engine, version = parse_runtime_version(runtime_version)
    node: dict[str, Any] = {
        "metadata": {"name": "n", "labels": {"nvidia.com/gpu.present": "true"}},
        "status": {"nodeInfo": {"containerRuntimeVersion": runtime_version}},
    }
    if in_config is not None:
        node["metadata"]["annotations"] = {"gpuctk.nvidia.com/cdi-enabled": str(in_config).lower()}
    rc = {"metadata": {"name": "nvidia"}, "handler": "nvidia"}
    group = plan(facts_from_document({"nodes": [node], "runtimeClasses": [rc]}))["groups"][0]
    rec = _report(engine, version, in_config)["recommendation"]["decision"]
    assert group["decision"]["path"] == rec["path"]
    assert group["decision"]["nvidia_default"] == rec["nvidia_default"]
    assert group["device_plugin"]["recommended_strategy"] == rec["device_list_strategy"]
    assert group["device_plugin"]["annotation_prefix"] == rec["cdi_annotation_prefix"]
