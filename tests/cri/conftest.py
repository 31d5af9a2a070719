"""Fixtures for the CRI tests: one simulated GPU node and private containerds per session
(one configured with the ``nvidia`` handler, one with it removed again, one configured by
``gpuctk install --cdi auto``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from support.tools import require_root, require_tool

from .node import CRINode, GpuNode, cri_node, provision_gpu_node, short_base


@pytest.fixture(scope="session")
def gpu_node() -> Iterator[GpuNode]:
    require_root()
    for tool in ("containerd", "ctr", "runc"):
        require_tool(tool)
    root = tempfile.mkdtemp(prefix=f"gpuctk-cri-gpu-{os.getpid()}-")
    try:
        yield provision_gpu_node(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def node(gpu_node: GpuNode) -> Iterator[CRINode]:
    """containerd 1.6 + CRI, configured by ``gpuctk runtime configure``."""
    with cri_node(short_base("on"), gpu_node) as n:
        yield n


@pytest.fixture(scope="session")
def auto_node(gpu_node: GpuNode) -> Iterator[CRINode]:
    """containerd 1.6 + CRI, configured by ``gpuctk install --cdi auto``."""
    with cri_node(short_base("auto"), gpu_node, auto=True) as n:
        yield n


@pytest.fixture(scope="session")
def node_without_nvidia(gpu_node: GpuNode) -> Iterator[CRINode]:
    """The same node after the ``nvidia`` runtime was removed from containerd's config."""
    with cri_node(short_base("off"), gpu_node, with_nvidia=False) as n:
        yield n
