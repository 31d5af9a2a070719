"""Fixture builders for the snapshot and doctor tests."""

from __future__ import annotations

import json
import os
import stat

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "k8s")
DRIVER = "580.105.08"  # the H100 capture's driver


def fake_nvidia_smi(directory: str, capture: str = "qx-h100.xml", *, fail: bool = False) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "nvidia-smi")
    xml = os.path.abspath(os.path.join(DATA, "nvidia-smi", capture))
    body = (
        "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n"
        if fail
        else f"exec cat '{xml}'\n"
    )
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def write_spec(root: str, name: str, host_paths: list[str], *, kind: str = "nvidia.com/gpu") -> str:
    d = os.path.join(root, "etc", "cdi")
    os.makedirs(d, exist_ok=True)
    spec = {
        "cdiVersion": "0.5.0",
        "kind": kind,
        "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}}],
        "containerEdits": {
            "mounts": [
                {"hostPath": p, "containerPath": p, "options": ["ro", "nosuid", "nodev", "bind"]}
                for p in host_paths
            ]
        },
    }
    path = os.path.join(d, name)
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def make_host(root: str, libs: list[str]) -> None:
    for rel in [*libs, "dev/nvidia0"]:
        p = os.path.join(root, rel.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").close()
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc", "os-release"), "w") as f:
        f.write('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n')
