"""Real runc: a container whose createContainer hooks are ONE ``gpuctk-hook run-steps`` hook
sees the same symlinks, ld cache, params mask, app profile and modes as with one hook per
step; a hostile image is still blocked through the combined path; a failing step fails the
create and stops the later steps (issue 15 item 4)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from gpuctk.generate.hooks import combine_hooks
from support.containers import make_bundle, runc_run
from support.hooks import hostile_image, snapshot
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration

LIBDIR = "/usr/local/nvidia/lib64"
LIBC_DIR = "/lib/x86_64-linux-gnu" if os.path.isdir("/lib/x86_64-linux-gnu") else "/lib/aarch64-linux-gnu"
SCRIPT = (
    "ldconfig -p | sort; echo ---; readlink /usr/lib/libnvidia-ml.so; readlink /usr/lib/libz-alias.so; echo ---; "
    "cat /proc/driver/nvidia/params; echo ---; cat /etc/nvidia/nvidia-application-profiles-rc.d/10-container.conf; "
    "echo ---; stat -c %a /opt/dir; ls /etc/ld.so.conf.d | sed 's/-[^-]*$//' | sort"
)


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


def _steps(host_params: str) -> list[list[str]]:
    """The createContainer steps of a generated spec, in upstream's order."""
    return [
        ["create-symlinks", "--link", "libnvidia-ml.so.1::/usr/lib/libnvidia-ml.so"],
        ["create-symlinks", "--link", f"{LIBDIR}/libz.so.1::/usr/lib/libz-alias.so"],
        ["enable-cuda-compat", "--host-driver-version=550.54.15"],  # no compat dir: a no-op
        ["update-ldcache", "--folder", LIBDIR],
        ["disable-device-node-modification", "--host-params-file", host_params],
        ["update-application-profile"],
        ["chmod", "--mode", "755", "--path", "/opt/dir"],
    ]


def _hook(*args: str) -> dict:
    return {
        "path": venv_script("gpuctk-hook"),
        "args": ["gpuctk-hook", *args],
        "env": ["NVIDIA_CTK_DEBUG=false"],
    }


def _bundle(base: str, hooks: list[dict], script: str = SCRIPT) -> tuple[str, str]:
    bundle = make_bundle(base, ["sh", "-c", script])
    root = os.path.join(bundle, "rootfs")
    _copy(_host_file("/sbin/ldconfig", "/usr/sbin/ldconfig"), root, "/sbin/ldconfig")
    _copy(os.path.join(LIBC_DIR, "libc.so.6"), root, os.path.join(LIBC_DIR, "libc.so.6"))
    loader = _host_file("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
    _copy(loader, root, loader)
    libz = sorted(n for n in os.listdir(LIBC_DIR) if n.startswith("libz.so.1."))[0]
    _copy(os.path.join(LIBC_DIR, libz), root, f"{LIBDIR}/{libz}")
    os.makedirs(os.path.join(root, "opt/dir"), mode=0o700)
    os.chmod(os.path.join(root, "opt/dir"), 0o700)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["mounts"].append(
        {"destination": "/proc/driver", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=64k"]}
    )
    # stands in for the NVIDIA kernel module: a params file and two GPU nodes in the container
    seed = (
        f"mkdir -p {root}/proc/driver/nvidia && "
        f"printf 'ModifyDeviceFiles: 1\\nDeviceFileMode: 438\\n' > {root}/proc/driver/nvidia/params"
    )
    cfg["linux"].setdefault("devices", []).extend(
        {"path": f"/dev/nvidia{m}", "type": "c", "major": 195, "minor": m, "fileMode": 0o666} for m in (0, 3)
    )
    cfg["hooks"] = {"createContainer": [{"path": require_tool("sh"), "args": ["sh", "-c", seed]}, *hooks]}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle, root


def test_combined_hook_gives_the_container_what_the_per_step_hooks_give(tmp_path):
    require_root()
    require_tool("runc")
    params = tmp_path / "host-params"
    params.write_text("ModifyDeviceFiles: 1\nDeviceFileMode: 438\n")
    per_step = [_hook(*s) for s in _steps(str(params))]
    combined = combine_hooks([{"hookName": "createContainer", **h} for h in per_step])
    assert len(combined) == 1 and combined[0]["args"][1] == "run-steps"
    combined = [{k: v for k, v in h.items() if k != "hookName"} for h in combined]
    out = {}
    for name, hooks in (("per-step", per_step), ("combined", combined)):
        bundle, root = _bundle(str(tmp_path / name), hooks)
        r = runc_run(bundle)
        assert r.returncode == 0, r.stderr + r.stdout
        out[name] = r.stdout
        st = os.stat(os.path.join(root, "opt/dir"))
        assert stat.S_IMODE(st.st_mode) == 0o755
    assert out["combined"] == out["per-step"]
    cache, links, masked, profile, rest = out["combined"].split("---\n")
    assert f"=> {LIBDIR}/libz.so.1" in cache and "libc.so.6" in cache
    assert links.split() == ["libnvidia-ml.so.1", f"{LIBDIR}/libz.so.1"]
    assert "ModifyDeviceFiles: 0" in masked
    assert json.loads(profile)["profiles"][0]["settings"] == ["EGLVisibleDGPUDevices", "0x9"]
    assert rest.split() == ["755", "00-nvcr", "zz-nvcr"]
    assert params.read_text().startswith("ModifyDeviceFiles: 1")


def test_failing_step_fails_the_create_and_stops_later_steps(tmp_path):
    require_root()
    require_tool("runc")
    bundle, root = _bundle(
        str(tmp_path / "b"),
        [
            _hook(
                "run-steps",
                "3",
                "create-symlinks",
                "--link",
                "t::/made/first",
                "3",
                "create-symlinks",
                "--link",
                "t::/etc/passwd/x",  # a regular file as a parent
                "3",
                "create-symlinks",
                "--link",
                "t::/made/never",
            )
        ],
        script="true",
    )
    r = runc_run(bundle)
    assert r.returncode != 0
    assert "gpuctk-hook: error: run-steps: step 2 (create-symlinks):" in r.stderr + r.stdout
    assert os.path.islink(os.path.join(root, "made/first"))
    assert not os.path.lexists(os.path.join(root, "made/never"))


def test_hostile_image_blocked_through_the_combined_hook(tmp_path):
    """As tests/integration/test_hooks_runc.py's hostile image (itself from
    tests/hooks/test_attacks_ownership.py), with ONE run-steps hook given no env of its own:
    old environment knobs, an ld.so.conf naming a host volume, ``ld.so.cache~`` hard-linked to
    a host file, chmod paths linked to a volume and to a bind-mounted secret."""
    require_root()
    require_tool("runc")
    img = hostile_image(str(tmp_path))
    host, bundle, cfg, libz, before = img.host, img.bundle, img.cfg, img.libz, img.before
    steps = [
        ["update-ldcache", "--folder", "/usr/lib/nv"],
        ["chmod", "--mode", "777", "--path", f"/usr/lib/nv/{libz},/usr/lib/token,/run/secrets/token"],
        ["disable-device-node-modification"],
    ]
    words = [w for s in steps for w in (str(len(s)), *s)]
    cfg["hooks"] = {
        "createContainer": [
            {"path": venv_script("gpuctk-hook"), "args": ["gpuctk-hook", "run-steps", *words]}
        ]
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = runc_run(bundle)
    assert r.returncode == 0, r.stderr + r.stdout
    params, data, token = r.stdout.split("---\n")
    assert "hunter2" not in params
    assert libz in data and f"{libz.split('.so.')[0]}.so.1\n" not in data  # no soname link on the volume
    assert "hunter2" in token
    assert snapshot(host) == before
