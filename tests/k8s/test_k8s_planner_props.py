"""Property tests: the facts parser and the planner never crash on odd cluster input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.errors import GpuctkError
from gpuctk.k8s.facts import facts_from_document
from gpuctk.k8s.planner import plan, render_table

runtime_strings = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda e, a, b, c, s: f"{e}://{a}.{b}.{c}{s}",
        st.sampled_from(["containerd", "cri-o", "docker", "frakti", ""]),
        st.integers(0, 30),
        st.integers(0, 40),
        st.integers(0, 40),
        st.sampled_from(["", "-k3s2", "-0ubuntu2~22.04.1", "+unknown", "-rc.1"]),
    ),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.text(max_size=8))


@st.composite
def nodes(draw):
    labels = draw(
        st.dictionaries(st.sampled_from(["nvidia.com/gpu.present", "a"]), st.text(max_size=6), max_size=2)
    )
    return {
        "metadata": {
            "name": draw(st.text(min_size=1, max_size=8)),
            "labels": labels,
            "annotations": {"gpuctk.nvidia.com/cdi-enabled": draw(scalars)},
        },
        "status": {
            "nodeInfo": {"containerRuntimeVersion": draw(runtime_strings)},
            "allocatable": {"nvidia.com/gpu": draw(scalars)},
        },
    }


@st.composite
def documents(draw):
    env = [
        {
            "name": "DEVICE_LIST_STRATEGY",
            "value": draw(
                st.sampled_from(
                    ["envvar", "cdi-cri", "cdi-annotations,cdi-cri", "volume-mounts", "bogus", ""]
                )
            ),
        }
    ]
    ds = {
        "metadata": {"name": "nvidia-device-plugin"},
        "spec": {"template": {"spec": {"containers": [{"image": "k8s-device-plugin", "env": env}]}}},
    }
    cp = {"spec": {"cdi": {"enabled": draw(scalars), "nriPluginEnabled": draw(scalars)}}}
    return {
        "nodes": draw(st.lists(nodes(), min_size=1, max_size=6)),
        "runtimeClasses": [{"metadata": {"name": "nvidia"}, "handler": "nvidia"}]
        if draw(st.booleans())
        else [],
        "daemonSets": [ds] if draw(st.booleans()) else [],
        "clusterPolicies": [cp] if draw(st.booleans()) else [],
    }


@settings(max_examples=150, deadline=None)
@given(documents())
def test_plan_total_on_arbitrary_clusters(doc):
    p = plan(facts_from_document(doc))
    gpu_nodes = sum(len(g["nodes"]) for g in p["groups"])
    assert gpu_nodes == p["gpu_nodes"]
    for g in p["groups"]:
        assert 1 <= g["row"] <= 10
        # a runtimeClassName on GPU pods only where the nvidia runtime injects
        assert (g["gpu_workload"]["runtimeClassName"] is not None) == (
            g["gpu_workload"]["injected_by"] == "nvidia-runtime"
        )
        assert not (g["row"] == 8 and g["management"]["runtimeClassName"])
    assert isinstance(render_table(p), str)


KEYS = [
    "nodes",
    "runtimeClasses",
    "daemonSets",
    "clusterPolicies",
    "metadata",
    "status",
    "spec",
    "nodeInfo",
    "labels",
    "annotations",
    "allocatable",
    "containerRuntimeVersion",
    "template",
    "containers",
    "env",
    "cdi",
    "toolkit",
    "name",
    "items",
    "kind",
]
garbage = st.recursive(
    st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans()),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(KEYS), c, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), garbage, max_size=4))
def test_facts_reject_garbage_with_a_gpuctk_error(doc):
    try:
        facts = facts_from_document(doc, "x.yaml")
    except GpuctkError as exc:
        assert str(exc).startswith("x.yaml")
    else:
        plan(facts)
