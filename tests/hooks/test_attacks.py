"""Attack fixtures: each builds a hostile container root, runs real hook processes against it
and asserts that a decoy "host" tree is byte-for-byte unchanged afterwards.

docs/security.md maps each fixture to the attack class it covers (CVE-2024-0132 symlink /
TOCTOU escapes, CVE-2025-23266 loader-environment injection).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading

import pytest

from support.hooks import host_libz, make_decoy, make_hook_bundle, resolver_flags, run_hook, snapshot, write
from support.tools import require_root, require_tool, venv_script

# root, namespaces, mounts and the host's ldconfig: integration tests
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("root_user")]

BOTH = pytest.mark.parametrize("fallback", ["0", "1"], ids=["openat2", "fallback"])


@pytest.fixture
def root_user():
    require_root()


@pytest.fixture
def host(tmp_path):
    """The decoy host tree, with a real library so a confused ldconfig would visibly add links there."""
    d = make_decoy(str(tmp_path))
    src = host_libz()
    shutil.copy(src, os.path.join(d, "lib", os.path.basename(src)))
    return d


@pytest.fixture
def b(tmp_path):
    b = make_hook_bundle(str(tmp_path / "c"))
    os.makedirs(b.path("/proc"))
    return b


def _unchanged(host, before, b=None):
    after = snapshot(host)
    assert after == before, "host decoy changed: " + ", ".join(
        sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    )
    assert not os.path.exists(os.path.join(host, "marker"))


def _host_link(b, link: str, target: str) -> None:
    os.makedirs(os.path.dirname(b.path(link)), exist_ok=True)
    os.symlink(target, b.path(link))


def _dotdots(host: str) -> str:
    return "../" * 12 + host.lstrip("/")


# ---------------------------------------------------------------- library dirs linking to the host
@BOTH
@pytest.mark.parametrize("style", ["absolute", "dotdot"])
def test_library_dir_is_link_to_host(b, host, fallback, style):
    before = snapshot(host)
    target = os.path.join(host, "lib") if style == "absolute" else _dotdots(os.path.join(host, "lib"))
    _host_link(b, "/usr/local/nvidia/lib64", target)
    _host_link(b, "/usr/lib64", target)
    assert (
        run_hook(
            b,
            "create-symlinks",
            "--link",
            "libz.so.1::/usr/lib64/libz.so",
            "--link",
            "libnvidia-ml.so.1::/usr/local/nvidia/lib64/libnvidia-ml.so",
            fallback=fallback,
        ).returncode
        == 0
    )
    p = run_hook(
        b,
        "update-ldcache",
        "--folder",
        "/usr/local/nvidia/lib64",
        "--folder",
        "/usr/lib64",
        fallback=fallback,
    )
    assert p.returncode == 0, p.stderr
    assert (
        run_hook(
            b, "chmod", "--mode", "777", "--path", "/usr/lib64/libhost.so.1.0", fallback=fallback
        ).returncode
        == 0
    )
    _unchanged(host, before)
    # the links landed inside the root, where the link text led
    assert os.path.islink(b.path(os.path.join(host, "lib", "libz.so")))


# ---------------------------------------------------------------- /etc and ld.so.conf.d linking to the host
@BOTH
@pytest.mark.parametrize("which", ["/etc", "/etc/ld.so.conf.d", "/etc/ld.so.conf", "/etc/ld.so.cache"])
@pytest.mark.parametrize("style", ["absolute", "dotdot"])
def test_etc_paths_link_to_host(b, host, fallback, which, style):
    before = snapshot(host)
    target = os.path.join(host, "etc") + which[len("/etc") :]
    if which not in ("/etc", "/etc/ld.so.conf.d"):
        os.makedirs(b.path("/etc/ld.so.conf.d"))
    elif which == "/etc/ld.so.conf.d":
        os.makedirs(b.path("/etc"))
    _host_link(b, which, target if style == "absolute" else _dotdots(target))
    write(b.path("/opt/lib/placeholder"), "")
    p = run_hook(b, "update-ldcache", "--folder", "/opt/lib", fallback=fallback)
    assert p.returncode == 0, p.stderr
    p = run_hook(b, "enable-cuda-compat", "--host-driver-version", "535.1.1", fallback=fallback)
    assert p.returncode == 0, p.stderr
    _unchanged(host, before)


# ---------------------------------------------------------------- /proc replaced by a symlink
@BOTH
def test_proc_is_a_symlink(b, host, fallback, tmp_path):
    before = snapshot(host)
    os.rmdir(b.path("/proc"))
    write(os.path.join(host, "driver", "nvidia", "params"), "ModifyDeviceFiles: 1\n")
    before = snapshot(host)
    os.symlink(host, b.path("/proc"))
    host_params = tmp_path / "host-params"
    host_params.write_text("ModifyDeviceFiles: 1\n")
    hook = venv_script("gpuctk-hook")
    decoy_params = os.path.join(host, "driver", "nvidia", "params")
    # inside a private mount namespace: afterwards the decoy params must still read 1 (not over-mounted)
    script = (
        f'"{hook}" {" ".join(resolver_flags(fallback))} disable-device-node-modification '
        f'--host-params-file "{host_params}"; echo rc=$?; cat "{decoy_params}"'
    )
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rc=0" in p.stdout and "ModifyDeviceFiles: 1" in p.stdout, p.stdout + p.stderr
    p = run_hook(b, "update-ldcache", fallback=fallback)
    assert p.returncode == 0, p.stderr
    _unchanged(host, before)


def test_magic_link_through_container_procfs(b, host):
    """/etc -> /proc/1/root/<host>/etc with a procfs mounted in the root (as runc does before
    createContainer hooks run): the hook must never write through the magic link."""
    before = snapshot(host)
    _host_link(b, "/etc", "/proc/self/root" + os.path.join(host, "etc"))
    write(b.path("/opt/lib/placeholder"), "")
    hook = venv_script("gpuctk-hook")
    for args in (
        ["update-ldcache", "--folder", "/opt/lib"],
        ["create-symlinks", "--link", "x::/etc/ld.so.conf.d/y"],
    ):
        script = f'mount -t proc proc "{b.path("/proc")}" && "{hook}" {" ".join(args)}; echo rc=$?'
        p = subprocess.run(
            [require_tool("unshare"), "-m", "-p", "-f", "--propagation", "private", "sh", "-c", script],
            input=b.state,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "rc=" in p.stdout, p.stderr
    _unchanged(host, before)


# ---------------------------------------------------------------- firmware dir resolving outside the root
@BOTH
def test_firmware_dir_outside_root(b, host, fallback):
    before = snapshot(host)
    _host_link(b, "/lib/firmware", os.path.join(host, "firmware"))
    p = run_hook(
        b,
        "create-symlinks",
        "--link",
        "/usr/share/nvidia/gsp.bin::/lib/firmware/nvidia/550.54/gsp.bin",
        "--link",
        "x::/lib/firmware/nvidia/gsp.bin",
        fallback=fallback,
    )
    assert p.returncode == 0, p.stderr
    p = run_hook(b, "chmod", "--mode", "777", "--path", "/lib/firmware/nvidia/gsp.bin", fallback=fallback)
    assert p.returncode == 0, p.stderr
    _unchanged(host, before)


# ---------------------------------------------------------------- a link swapped while the hook runs
@BOTH
def test_race_swapping_dir_and_link(b, host, fallback):
    before = snapshot(host)
    libdir = b.path("/usr/lib/nv")
    os.makedirs(os.path.dirname(libdir), exist_ok=True)
    stop = threading.Event()

    def swapper() -> None:
        targets = [os.path.join(host, "lib"), _dotdots(os.path.join(host, "lib")), os.path.join(host, "etc")]
        i = 0
        while not stop.is_set():
            tmp = libdir + ".swap"
            try:
                if i % 2:
                    os.symlink(targets[i % 3], tmp)
                else:
                    os.makedirs(tmp, exist_ok=True)
                if os.path.isdir(libdir) and not os.path.islink(libdir):
                    shutil.rmtree(libdir, ignore_errors=True)
                os.replace(tmp, libdir)
            except OSError:
                pass
            i += 1

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    try:
        for n in range(6):
            run_hook(
                b,
                "create-symlinks",
                "--link",
                f"libz.so.1::/usr/lib/nv/libz-{n}.so",
                "--link",
                "x::/usr/lib/nv/ld.so.cache",
                fallback=fallback,
            )
            run_hook(b, "update-ldcache", "--folder", "/usr/lib/nv", fallback=fallback)
            run_hook(b, "chmod", "--mode", "777", "--path", "/usr/lib/nv/params", fallback=fallback)
    finally:
        stop.set()
        t.join()
    _unchanged(host, before)


# ---------------------------------------------------------------- the container's environment and binaries
def test_ld_preload_in_container_env(b, host):
    """The image sets LD_PRELOAD/LD_LIBRARY_PATH/LD_AUDIT: nothing the hooks start may see them."""
    before = snapshot(host)
    with open(os.path.join(b.bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["env"] = [
        "LD_PRELOAD=/proc/self/cwd/evil.so",
        "LD_LIBRARY_PATH=/evil",
        "LD_AUDIT=/evil.so",
        "NVIDIA_VISIBLE_DEVICES=0",
    ]
    with open(os.path.join(b.bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    # even if a runtime leaked them into the hook's own environment (the CVE-2025-23266 path):
    # a path that does not exist on the host, so the interpreter itself survives to show the rest
    leaked = {
        "LD_PRELOAD": "/nonexistent/evil.so",
        "LD_LIBRARY_PATH": "/evil",
        "LD_AUDIT": "/nonexistent/a.so",
    }
    write(b.path("/opt/lib/placeholder"), "")
    p = run_hook(b, "update-ldcache", "--folder", "/opt/lib", env=leaked)
    assert p.returncode == 0, p.stderr
    _unchanged(host, before)


_EXECVE_PROBE = """
import json, os, sys
from gpuctk.hooks import ldcache
from gpuctk.hooks.confine import Root

rfd, wfd = os.pipe()

def fake_execve(path, args, env):  # runs in the pivoted child
    with open("/proc/self/status") as f:
        status = dict(line.split(":\\t", 1) for line in f.read().splitlines() if ":\\t" in line)
    os.write(wfd, json.dumps({"args": args, "env": env, "fd": isinstance(path, int), "pid": os.getpid(),
                              "root": os.listdir("/"), "status": status}).encode())
    os._exit(0)

ldcache.os.execve = fake_execve
with Root(sys.argv[1]) as r:
    assert ldcache.run_ldconfig(r, None) == 0
os.close(wfd)
sys.stdout.write(os.read(rfd, 65536).decode())
"""


def test_ldconfig_env_is_scrubbed(b):
    """What the hook passes to execve for ldconfig, observed from the forked child.

    Runs in a fresh interpreter: forking the pytest process itself would also fork
    whatever threads earlier tests left in it (gRPC's, for one)."""
    import sys

    env = dict(os.environ, LD_PRELOAD="/evil.so", LD_AUDIT="/evil.so")
    p = subprocess.run(
        [sys.executable, "-c", _EXECVE_PROBE, b.root], capture_output=True, text=True, env=env, timeout=60
    )
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["env"] == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    assert got["fd"] is True  # exec'd from the sealed memfd, not a path
    assert got["args"] == ["ldconfig", "-f", "/etc/ld.so.conf", "-C", "/etc/ld.so.cache"]
    assert got["pid"] == 1  # PID 1 of its own PID namespace, with a fresh proc
    assert sorted(got["root"]) == sorted(os.listdir(b.root))  # "/" is the container root
    keep = (1 << 0) | (1 << 1) | (1 << 3)  # CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER
    assert int(got["status"]["CapBnd"], 16) == keep
    assert int(got["status"]["CapInh"], 16) & ~keep == 0
    assert int(got["status"]["CapAmb"], 16) == 0
    assert got["status"]["NoNewPrivs"].strip() == "1"


def test_legacy_cli_never_sees_loader_env(tmp_path, host):
    before = snapshot(host)
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "nvidia-container-cli").write_text('#!/bin/sh\nenv > "$(dirname "$0")/env.txt"\n')
    os.chmod(stub / "nvidia-container-cli", 0o755)
    bundle = tmp_path / "lb"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(
        json.dumps(
            {
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "process": {"env": ["NVIDIA_VISIBLE_DEVICES=0", "LD_PRELOAD=/evil.so"]},
            }
        )
    )
    cfgp = tmp_path / "config.toml"
    cfgp.write_text(
        f'[nvidia-container-cli]\npath = "{stub}/nvidia-container-cli"\n'
        'environment = ["LD_LIBRARY_PATH=/evil", "KEEP=1"]\n'
    )
    env = {
        "PATH": f"{stub}:/usr/bin:/bin",
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfgp),
        "LD_PRELOAD": "/nonexistent/evil.so",
        "LD_AUDIT": "/nonexistent/a.so",
    }
    p = subprocess.run(
        [venv_script("gpuctk-runtime-hook"), "prestart"],
        input=json.dumps({"bundle": str(bundle)}),
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    seen = (stub / "env.txt").read_text()
    assert "LD_PRELOAD" not in seen and "LD_AUDIT" not in seen and "LD_LIBRARY_PATH" not in seen
    assert "KEEP=1" in seen
    _unchanged(host, before)


@pytest.mark.parametrize("where", ["/sbin/ldconfig", "/sbin/ldconfig.real", "/usr/sbin/ldconfig"])
def test_container_ldconfig_is_never_run(b, host, where):
    before = snapshot(host)
    os.makedirs(b.path("/bin"), exist_ok=True)
    shutil.copy(require_tool("busybox"), b.path("/bin/sh"))
    evil = f'#!/bin/sh\necho pwned > "{host}/marker"\necho ran > /ran-marker\n'
    for lp in ("/sbin/ldconfig", "/sbin/ldconfig.real", "/usr/sbin/ldconfig"):
        write(b.path(lp), evil, 0o755)
    p = run_hook(b, "update-ldcache", "--ldconfig-path", where if os.path.exists(where) else "/sbin/ldconfig")
    assert p.returncode == 0, p.stderr
    p = run_hook(b, "update-ldcache")
    assert p.returncode == 0, p.stderr
    # a path only the container has is looked up on the host, where it does not exist
    p = run_hook(b, "update-ldcache", "--ldconfig-path", "/opt/evil/ldconfig")
    write(b.path("/opt/evil/ldconfig"), evil, 0o755)
    assert run_hook(b, "update-ldcache", "--ldconfig-path", "/opt/evil/ldconfig").returncode == 1
    assert not os.path.exists(b.path("/ran-marker"))
    _unchanged(host, before)


def test_ld_so_conf_points_through_a_procfs_in_the_root(b, host):
    """The image's ld.so.conf names /p/<pid>/root/<host>/lib, with a procfs mounted at /p inside
    the root and <pid> a process whose root is the host's: ldconfig (which follows whatever its
    config says) must not reach the host through it. Two defences each stop it: every procfs
    below the root is detached before ldconfig runs, and ldconfig lacks the capabilities to
    follow another root process's /proc/<pid>/root. (With both disabled this test fails: ldconfig
    adds a soname link to the decoy lib dir.)"""
    os.makedirs(b.path("/p"))
    os.makedirs(b.path("/etc/ld.so.conf.d"))
    line = f"/p/$$/root{host}/lib"
    before = snapshot(host)
    hook = venv_script("gpuctk-hook")
    # $$ is this shell: alive while the hook runs, and its root is the host's /
    script = (
        f'mount -t proc proc "{b.path("/p")}" && echo "{line}" > "{b.path("/etc/ld.so.conf")}" && '
        f'ls "{b.path("/p")}/$$/root{host}/lib" >/dev/null && "{hook}" update-ldcache; echo rc=$?'
    )
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rc=0" in p.stdout, p.stdout + p.stderr  # (the ls proves the magic link works from the host side)
    _unchanged(host, before)


# ---------------------------------------------------------------- content that blocks a host process
@pytest.mark.parametrize("where", ["/etc/ld.so.conf.d/evil.conf", "/etc/ld.so.conf"])
def test_fifo_in_ld_so_conf_tree_cannot_hang_the_hook(b, where):
    """ldconfig opens every conf file the image names; a FIFO there blocked it (and with it the
    root hook and the container create) forever. The hook now kills ldconfig's private PID
    namespace after a deadline and fails; no ldconfig is left running."""
    os.makedirs(b.path("/etc/ld.so.conf.d"))
    write(b.path("/etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n")
    if os.path.exists(b.path(where)):
        os.unlink(b.path(where))
    os.mkfifo(b.path(where))
    p = run_hook(b, "update-ldcache", "--folder", "/usr/lib/x", hook_timeout=1, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "deadline" in p.stderr and len(p.stderr.strip().splitlines()) <= 2, p.stderr
    # no reader is left holding the FIFO open: a non-blocking open for writing finds none
    with pytest.raises(OSError) as exc:
        os.close(os.open(b.path(where), os.O_WRONLY | os.O_NONBLOCK))
    assert exc.value.errno == errno.ENXIO
