"""The shared container helpers really run containers (guards every integration test's footing)."""

import os

import pytest

from support.containers import make_bundle, podman_run, private_containerd, runc_run

pytestmark = pytest.mark.integration


def test_runc_runs_busybox_bundle(tmp_path):
    bundle = make_bundle(str(tmp_path / "b"), ["sh", "-c", "echo hello-$((40+2))"])
    r = runc_run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello-42"


def test_podman_runs_local_busybox_image():
    r = podman_run(["--", "sh", "-c", "echo from-podman; id -u"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["from-podman", "0"]


def test_private_containerd_runs_container(tmp_path):
    base = f"/tmp/gpuctk-ctd-{os.getpid()}"
    with private_containerd(base) as cd:
        ref = cd.import_busybox()
        r = cd.ctr("run", "--rm", ref, "smoke", "sh", "-c", "echo from-ctr")
        assert r.returncode == 0, r.stderr + cd.log()
        assert r.stdout.strip() == "from-ctr"
