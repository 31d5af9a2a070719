"""Golden plans and manifests for every cluster fixture.

Regenerate after an intended change: GPUCTK_UPDATE_GOLDEN=1 pytest tests/k8s/test_k8s_golden.py
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from gpuctk.errors import GpuctkError
from gpuctk.k8s.facts import facts_from_document
from gpuctk.k8s.manifests import build
from gpuctk.k8s.planner import plan, render_table
from support.golden import UPDATE

HERE = os.path.dirname(__file__)
CLUSTERS = os.path.join(HERE, "..", "data", "k8s", "clusters")
GOLDEN = os.path.join(HERE, "..", "data", "k8s", "golden")
NAMES = sorted(f[:-5] for f in os.listdir(CLUSTERS) if f.endswith(".yaml"))


def check(name: str, text: str) -> None:
    path = os.path.join(GOLDEN, name)
    if UPDATE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert f.read() == text, f"{name} differs from the golden file (GPUCTK_UPDATE_GOLDEN=1 to regenerate)"


@pytest.mark.parametrize("name", NAMES)
def test_golden_plan_and_manifests(name):
    path = os.path.join(CLUSTERS, f"{name}.yaml")
    with open(path) as f:
        p = plan(facts_from_document(yaml.safe_load(f), path))
    check(f"{name}.plan.json", json.dumps(p, indent=2, sort_keys=True) + "\n")
    check(f"{name}.plan.txt", render_table(p))
    docs: list = []
    for i in range(1, len(p["groups"]) + 1):
        try:
            docs += [{"group": i, **d} for d in build(p, i)]
        except GpuctkError as exc:
            docs.append({"group": i, "error": str(exc)})
    check(f"{name}.manifests.yaml", yaml.safe_dump_all(docs, sort_keys=False))
