"""Acceptance: without the ``nvidia`` runtime in containerd's config, every pod that names
the handler fails at RunPodSandbox with containerd's own error, exactly what a kubelet
reports for a RuntimeClass whose handler the node lacks."""

from __future__ import annotations

import pytest

from .client import CRIError
from .node import HANDLER, CRINode, effective_runtimes
from .scenarios import probe, scenario

pytestmark = pytest.mark.integration

CONTAINERD_ERROR = 'no runtime for "nvidia" is configured'


def test_handler_removed_from_config(node_without_nvidia: CRINode) -> None:
    runtimes = effective_runtimes(node_without_nvidia.containerd.config_path)
    assert HANDLER not in runtimes and "runc" in runtimes


@pytest.mark.parametrize("sid", ["1", "2", "3", "5"])
def test_scenario_fails_with_containerds_no_runtime_error(node_without_nvidia: CRINode, sid: str) -> None:
    sc = scenario(sid, node_without_nvidia.gpu)
    node_without_nvidia.set_toolkit_config(sc.toolkit)
    requests = [r for r in sc.requests if r.runtime_handler == HANDLER]
    assert requests
    for req in requests:
        with pytest.raises(CRIError) as err:
            probe(node_without_nvidia, req)
        assert err.value.method == "RunPodSandbox"
        assert CONTAINERD_ERROR in err.value.details, str(err.value)
        assert err.value.details.startswith("failed to get sandbox runtime"), str(err.value)


def test_default_handler_still_works_without_nvidia(node_without_nvidia: CRINode) -> None:
    (req,) = scenario("4", node_without_nvidia.gpu).requests
    seen = probe(node_without_nvidia, req)
    assert seen.raw.exit_code == 0 and seen.devices == set(), seen.explain()
