"""runc runs a busybox bundle whose config.json carries createContainer hooks naming
gpuctk-hook (as a CDI spec injects them); the container itself shows their effects."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from support.containers import make_bundle, runc_run
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration

LIBDIR = "/usr/local/nvidia/lib64"


def _host_file(*cands: str) -> str:
    for c in cands:
        if os.path.exists(c):
            return c
    pytest.fail(f"none of {cands} on this host")
    raise AssertionError


def _copy(src: str, root: str, dest: str) -> None:
    d = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(d), exist_ok=True)
    shutil.copy2(os.path.realpath(src), d)


def _cdi_hook(name: str, *args: str) -> dict:
    hook = venv_script("gpuctk-hook")
    return {"path": hook, "args": ["gpuctk-hook", name, *args], "env": ["NVIDIA_CTK_DEBUG=false"]}


def test_cdi_hooks_in_runc(tmp_path):
    require_root()
    require_tool("runc")
    script = (
        "ldconfig -p; echo ---; readlink /usr/lib/libnvidia-ml.so; readlink /usr/lib/libz-alias.so; "
        "echo ---; cat /proc/driver/nvidia/params; echo ---; "
        "(echo x >> /proc/driver/nvidia/params) 2>/dev/null && echo WRITABLE || echo READONLY"
    )
    bundle = make_bundle(str(tmp_path / "b"), ["sh", "-c", script])
    root = os.path.join(bundle, "rootfs")
    # glibc and ldconfig from the host, for the in-container `ldconfig -p` only (the hook runs the HOST's)
    libc_dir = "/lib/x86_64-linux-gnu" if os.path.isdir("/lib/x86_64-linux-gnu") else "/lib/aarch64-linux-gnu"
    _copy(_host_file("/sbin/ldconfig", "/usr/sbin/ldconfig"), root, "/sbin/ldconfig")
    _copy(os.path.join(libc_dir, "libc.so.6"), root, os.path.join(libc_dir, "libc.so.6"))
    loader = _host_file("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
    _copy(loader, root, loader)
    # the "injected" driver library folder: one small real .so
    libz = sorted(n for n in os.listdir(libc_dir) if n.startswith("libz.so.1."))[0]
    _copy(os.path.join(libc_dir, libz), root, f"{LIBDIR}/{libz}")
    # the simulated driver: a host params file saying 1, and a procfs entry for it in the container
    host_params = tmp_path / "host-params"
    host_params.write_text("ModifyDeviceFiles: 1\nDeviceFileMode: 438\n")
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["mounts"].append(
        {
            "destination": "/proc/driver",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=64k"],
        }
    )
    seed = (
        f"mkdir -p {root}/proc/driver/nvidia && "
        f"printf 'ModifyDeviceFiles: 1\\nDeviceFileMode: 438\\n' > {root}/proc/driver/nvidia/params"
    )
    cfg["hooks"] = {
        "createContainer": [
            {
                "path": require_tool("sh"),
                "args": ["sh", "-c", seed],
            },  # stands in for the NVIDIA kernel module
            _cdi_hook(
                "create-symlinks",
                "--link",
                "libnvidia-ml.so.1::/usr/lib/libnvidia-ml.so",
                "--link",
                f"{LIBDIR}/libz.so.1::/usr/lib/libz-alias.so",
            ),
            _cdi_hook("update-ldcache", "--folder", LIBDIR),
            _cdi_hook("disable-device-node-modification", "--host-params-file", str(host_params)),
            _cdi_hook("some-future-hook", "--with", "flags"),  # must not break the container
        ]
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = runc_run(bundle)
    assert r.returncode == 0, r.stderr + r.stdout
    cache, links, params, writable = r.stdout.split("---\n")
    assert f"=> {LIBDIR}/libz.so.1" in cache, cache
    assert "libc.so.6" in cache  # the container's own system dirs (zz-nvcr) were cached too
    assert links.split() == ["libnvidia-ml.so.1", f"{LIBDIR}/libz.so.1"]
    assert "ModifyDeviceFiles: 0" in params and "DeviceFileMode: 438" in params
    assert writable.strip() == "READONLY"
    # conf files written inside the container root, not anywhere else
    confs = os.listdir(os.path.join(root, "etc/ld.so.conf.d"))
    assert any(n.startswith("00-nvcr-") for n in confs) and any(n.startswith("zz-nvcr-") for n in confs)
    assert host_params.read_text().startswith("ModifyDeviceFiles: 1")


def test_hostile_image_under_runc_leaves_the_host_unchanged(tmp_path):
    """A hostile image under real runc, the hooks given no ``env`` of their own (so runc hands
    them the container's): the image sets the old environment knobs (a host params path to a
    root-only secret, the resolver, an unbounded ldconfig timeout), lists a host volume in its
    ld.so.conf, ships ``/etc/ld.so.cache~`` as a hard link to a host file, and links paths the
    chmod hook is told to change to a volume and to a bind-mounted secret. The container runs;
    the host is byte-for-byte unchanged (issue 13 §1, §2)."""
    from support.hooks import hostile_image, snapshot

    require_root()
    require_tool("runc")
    img = hostile_image(str(tmp_path))
    host, bundle, cfg, libz, before = img.host, img.bundle, img.cfg, img.libz, img.before
    hook = venv_script("gpuctk-hook")

    def bare(name: str, *args: str) -> dict:  # no "env": runc passes the container's
        return {"path": hook, "args": ["gpuctk-hook", name, *args]}

    cfg["hooks"] = {
        "createContainer": [
            bare("update-ldcache", "--folder", "/usr/lib/nv"),
            bare("chmod", "--mode", "777", "--path", f"/usr/lib/nv/{libz},/usr/lib/token,/run/secrets/token"),
            bare("disable-device-node-modification"),
        ]
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = runc_run(bundle)
    assert r.returncode == 0, r.stderr + r.stdout
    params, data, token = r.stdout.split("---\n")
    assert "hunter2" not in params  # the env's host path was not used
    assert libz in data and f"{libz.split('.so.')[0]}.so.1\n" not in data  # no soname link on the volume
    assert "hunter2" in token  # the container's own view of its secret mount is intact
    assert snapshot(host) == before
