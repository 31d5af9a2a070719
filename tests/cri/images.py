"""Local images for the CRI tests: busybox archives from tests/support with their image
config rewritten (entrypoint, env), imported into containerd's ``k8s.io`` namespace.

Nothing is pulled: the CRI plugin's ``sandbox_image`` (``localhost/pause:latest`` in the
shared base config) is one of these archives whose entrypoint sleeps until killed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any

from support.containers import Containerd, build_oci_archive

PAUSE_IMAGE = "localhost/pause:latest"
WORKLOAD_IMAGE = "localhost/gpuctk-cri-busybox:latest"
# An image whose own config sets NVIDIA_VISIBLE_DEVICES=all (like CUDA base images do).
ENV_ALL_IMAGE = "localhost/gpuctk-cri-visible-all:latest"

# pid 1 of the sandbox: exits on SIGTERM (StopPodSandbox), otherwise sleeps forever.
PAUSE_ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done"]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def build_image_archive(
    path: str,
    ref: str,
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """An OCI archive of the shared busybox image with its config's Entrypoint/Cmd/Env replaced."""
    build_oci_archive(path, ref)
    with tarfile.open(path) as tf:
        blobs: dict[str, bytes] = {}
        for member in tf.getmembers():
            fobj = tf.extractfile(member)
            if fobj is not None:
                blobs[member.name] = fobj.read()
    index = json.loads(blobs["index.json"])
    mdesc = index["manifests"][0]
    manifest = json.loads(blobs.pop(_blob_name(mdesc["digest"])))
    config: dict[str, Any] = json.loads(blobs.pop(_blob_name(manifest["config"]["digest"])))
    img = config.setdefault("config", {})
    if entrypoint is not None:
        img["Entrypoint"] = entrypoint
    if cmd is not None:
        img["Cmd"] = cmd
    if env:
        base_env = [e for e in img.get("Env", []) if e.split("=", 1)[0] not in env]
        img["Env"] = base_env + [f"{k}={v}" for k, v in env.items()]
    config_bytes = json.dumps(config).encode()
    manifest["config"].update(digest=_digest(config_bytes), size=len(config_bytes))
    manifest_bytes = json.dumps(manifest).encode()
    mdesc.update(digest=_digest(manifest_bytes), size=len(manifest_bytes))
    blobs[_blob_name(manifest["config"]["digest"])] = config_bytes
    blobs[_blob_name(mdesc["digest"])] = manifest_bytes
    blobs["index.json"] = json.dumps(index).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def import_cri_images(cd: Containerd) -> None:
    """Import the pause, workload and env=all images into ``k8s.io``, unpacked for the
    CRI plugin's snapshotter (``native`` in the shared base config)."""
    images: dict[str, dict[str, Any]] = {
        PAUSE_IMAGE: {"entrypoint": PAUSE_ENTRYPOINT, "cmd": []},
        WORKLOAD_IMAGE: {},
        ENV_ALL_IMAGE: {"env": {"NVIDIA_VISIBLE_DEVICES": "all"}},
    }
    for i, (ref, opts) in enumerate(images.items()):
        archive = build_image_archive(os.path.join(cd.base, f"image-{i}.tar"), ref, **opts)
        cd.ctr("images", "import", "--snapshotter", "native", archive, namespace="k8s.io", check=True)
        os.unlink(archive)
