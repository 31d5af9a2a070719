from __future__ import annotations

import os
import stat

import pytest

from support.fakekube import FakeKube, nvidia_node

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "k8s")


def make_fake_nvidia_smi(directory: str, capture: str = "qx-h100.xml") -> str:
    """A `nvidia-smi` that prints a real `-q -x` capture."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "nvidia-smi")
    xml = os.path.abspath(os.path.join(DATA, "nvidia-smi", capture))
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec cat '{xml}'\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_smi_dir(tmp_path):
    d = str(tmp_path / "gpu-bin")
    make_fake_nvidia_smi(d)
    return d


@pytest.fixture
def kube(tmp_path, fake_smi_dir):
    """A fake API server with one GPU node; yields (fake, kubeconfig path)."""
    kc = str(tmp_path / "kubeconfig")
    fake = FakeKube(gpu_path=fake_smi_dir, node_name="gpu-node-1", max_lifetime=120, process_timeout=60)
    fake.kubelet_env["KUBECONFIG"] = kc
    with fake:
        fake.write_kubeconfig(kc)
        fake.add(nvidia_node("gpu-node-1", "containerd://2.0.5", gpus=8))
        fake.add(nvidia_node("cpu-node-1", "containerd://2.0.5", gpus=0, present=False))
        yield fake, kc
