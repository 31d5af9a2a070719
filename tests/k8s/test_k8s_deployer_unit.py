"""Deployer logic against an in-memory KubeAPI stand-in (no HTTP): waiting states and cleanup."""

from __future__ import annotations

from typing import Any

import pytest

from gpuctk.errors import GpuctkError
from gpuctk.k8s.agent import AgentOptions
from gpuctk.k8s.client import KubeAPIError
from gpuctk.k8s.deployer import auto_node_selector, cleanup, wait_for_job


class MemAPI:
    def __init__(self, objs: list[dict[str, Any]] | None = None, logs: str = "") -> None:
        self.objs = list(objs or [])
        self.deleted: list[tuple[str, str]] = []
        self.log_text = logs

    def _match(self, o, kind, ns):
        return o["kind"] == kind and (ns is None or o["metadata"].get("namespace") in (ns, None))

    def get(self, kind, name, namespace=None):
        return next(
            (o for o in self.objs if self._match(o, kind, namespace) and o["metadata"]["name"] == name), None
        )

    def list(self, kind, namespace=None, labels=None):
        out = [o for o in self.objs if self._match(o, kind, namespace)]
        for k, v in (labels or {}).items():
            out = [o for o in out if (o["metadata"].get("labels") or {}).get(k) == v]
        return out

    def create(self, obj):
        self.objs.append(obj)
        return obj

    def replace(self, obj):
        return obj

    def delete(self, kind, name, namespace=None):
        if kind == "ClusterRole":
            raise KubeAPIError("forbidden", code=403)
        self.deleted.append((kind, name))
        return True

    def logs(self, pod, namespace, tail_lines=None):
        return self.log_text


def job(status=None):
    return {
        "kind": "Job",
        "metadata": {"name": "gpuctk-snapshot", "namespace": "gpuctk"},
        "status": status or {},
    }


def pod(state):
    return {
        "kind": "Pod",
        "metadata": {
            "name": "gpuctk-snapshot-abcde",
            "namespace": "gpuctk",
            "labels": {"job-name": "gpuctk-snapshot"},
        },
        "status": {"phase": "Pending", "containerStatuses": [{"state": state}]},
    }


def test_timeout_shows_waiting_reason_and_events():
    api = MemAPI(
        [
            job({"active": 1}),
            pod({"waiting": {"reason": "ImagePullBackOff", "message": "pull denied"}}),
            {
                "kind": "Event",
                "metadata": {"name": "e", "namespace": "gpuctk"},
                "reason": "FailedCreate",
                "message": "boom",
                "involvedObject": {"name": "gpuctk-snapshot"},
            },
        ]
    )
    seen: list[str] = []
    ticks = iter(range(100))
    with pytest.raises(GpuctkError) as exc:
        wait_for_job(api, AgentOptions(timeout=2), seen.append, poll=0, clock=lambda: float(next(ticks)))
    msg = str(exc.value)
    assert (
        "timed out after 2s" in msg and "ImagePullBackOff: pull denied" in msg and "FailedCreate: boom" in msg
    )
    assert seen == [
        "waiting for Job gpuctk-snapshot: gpuctk-snapshot-abcde Pending (ImagePullBackOff: pull denied)"
    ]


def test_failed_condition_includes_logs():
    api = MemAPI(
        [
            job({"conditions": [{"type": "Failed", "status": "True", "message": "DeadlineExceeded"}]}),
            pod({"terminated": {"exitCode": 1}}),
        ],
        logs="Traceback: agent died\n",
    )
    with pytest.raises(GpuctkError, match=r"(?s)failed: DeadlineExceeded.*agent died"):
        wait_for_job(api, AgentOptions(), poll=0)


def test_cleanup_reports_leftovers_without_raising():
    api = MemAPI([pod({})])
    notes: list[str] = []
    cleanup(api, AgentOptions(), created_namespace=True, progress=notes.append)
    kinds = [k for k, _ in api.deleted]
    assert kinds[:3] == ["Job", "Pod", "ConfigMap"] and kinds[-1] == "Namespace"
    assert "ClusterRoleBinding" in kinds and "ClusterRole" not in kinds
    assert any("left some objects behind" in n and "forbidden" in n for n in notes)


def test_auto_node_selector_only_when_unset_and_gpu_nodes_exist():
    gpu_node = {"kind": "Node", "metadata": {"name": "g", "labels": {"nvidia.com/gpu.present": "true"}}}
    opts = AgentOptions()
    auto_node_selector(MemAPI([gpu_node]), opts)
    assert opts.node_selector == {"nvidia.com/gpu.present": "true"}
    opts = AgentOptions(node_selector={"a": "b"})
    auto_node_selector(MemAPI([gpu_node]), opts)
    assert opts.node_selector == {"a": "b"}
    opts = AgentOptions()
    auto_node_selector(MemAPI([]), opts)
    assert opts.node_selector == {}
