"""Attack fixtures, round two (issue 13): the image controls the hook's environment, puts
objects inside the root that are not the container's own (mounts, kernel files, hard links to
host files), and builds trees that make a root process block or work without end.

Each test builds a hostile root, runs real ``gpuctk-hook`` processes and checks the decoy
"host" tree (and, where named, real host objects) unchanged before and after. docs/security.md
maps each fixture to its class and to the mechanism that stops it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time

import pytest

from support.hooks import host_libz, make_decoy, make_hook_bundle, resolver_flags, run_hook, snapshot, write
from support.tools import require_root, require_tool, venv_script

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("root_user")]

BOTH = pytest.mark.parametrize("fallback", ["0", "1"], ids=["openat2", "fallback"])
MUSL = f"/etc/ld-musl-{os.uname().machine}.path"


@pytest.fixture
def root_user():
    require_root()


@pytest.fixture
def host(tmp_path):
    d = make_decoy(str(tmp_path))
    write(os.path.join(d, "secret"), "TOP SECRET host data\n", 0o400)
    src = host_libz()
    shutil.copy(src, os.path.join(d, "lib", os.path.basename(src)))
    return d


@pytest.fixture
def b(tmp_path):
    b = make_hook_bundle(str(tmp_path / "c"))
    os.makedirs(b.path("/proc"))
    os.makedirs(b.path("/etc/ld.so.conf.d"))
    return b


def _unchanged(host: str, before: dict) -> None:
    after = snapshot(host)
    assert after == before, "host decoy changed: " + ", ".join(
        sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    )


def _in_mount_ns(b, setup: str, *hook_args: str, fallback: str = "0", timeout: float = 60) -> str:
    """Run ``setup`` (shell, may mount things into the root) then the hook, in a private mount
    namespace (as runc runs createContainer hooks: in the container's namespace, its mounts
    visible); returns stdout+stderr, with ``rc=N`` for the hook."""
    hook = venv_script("gpuctk-hook")
    args = " ".join(f"'{a}'" for a in [*resolver_flags(fallback), *hook_args])
    script = f'{setup}\n"{hook}" {args}; echo rc=$?'
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.stdout + p.stderr


def _rc(out: str) -> int:
    line = [ln for ln in out.splitlines() if ln.startswith("rc=")]
    assert line, out
    return int(line[-1][3:])


# ================================================================ §1 the environment is the image's
def test_host_params_path_from_environment_is_ignored(b, host):
    """GPUCTK_HOST_NVIDIA_PARAMS once chose the host file copied into the container: an image
    set it to a root-only host file and read that file's content from its own /proc."""
    before = snapshot(host)
    secret = os.path.join(host, "secret")
    with open(secret, "w") as f:
        f.write("ModifyDeviceFiles: 1\nSECRET=hunter2\n")
    os.chmod(secret, 0o400)
    before = snapshot(host)
    write(b.path("/proc/driver/nvidia/params"), "ModifyDeviceFiles: 1\n")
    hook = venv_script("gpuctk-hook")
    params = b.path("/proc/driver/nvidia/params")
    script = (
        f'GPUCTK_HOST_NVIDIA_PARAMS="{secret}" "{hook}" disable-device-node-modification; '
        f'echo rc=$?; cat "{params}"'
    )
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rc=0" in p.stdout, p.stdout + p.stderr
    assert "hunter2" not in p.stdout
    _unchanged(host, before)


def test_deadline_is_not_raised_from_the_environment(b):
    """GPUCTK_LDCONFIG_TIMEOUT once raised ldconfig's limit without a cap: with a FIFO as the
    image's ld.so.conf the hook then hung container creation. The deadline is argv-only."""
    os.mkfifo(b.path("/etc/ld.so.conf.d/evil.conf"))
    write(b.path("/etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n")
    p = run_hook(
        b,
        "update-ldcache",
        env={"GPUCTK_LDCONFIG_TIMEOUT": "100000", "GPUCTK_CONFINE_FALLBACK": "1"},
        hook_timeout=2,
        timeout=60,
    )
    assert p.returncode == 1 and "deadline" in p.stderr, p.stderr


def test_timeout_flag_is_bounded():
    from gpuctk.hooks import deadline

    assert deadline.parse("100000") == deadline.MAX_S
    assert deadline.parse("0") == deadline.MIN_S
    assert deadline.parse("-5") == deadline.MIN_S
    for bad in ("nan", "soon", ""):
        with pytest.raises(ValueError):
            deadline.parse(bad)


# ================================================================ §2 inside the root, not the container's
@BOTH
@pytest.mark.parametrize("target", ["/proc/self/mountinfo", "/proc/iomem", "/proc/1/environ"])
def test_musl_path_linked_to_procfs_is_not_copied(b, host, fallback, target):
    """Alpine: the image's ld-musl path file is a link into a procfs mounted in the root (as runc
    mounts it before createContainer hooks run). Its content must never be copied into a
    container file (kernel addresses, mount layout, another process's environment)."""
    write(b.path("/etc/alpine-release"), "3.19.0\n")
    os.symlink(target, b.path(MUSL))
    before = snapshot(host)
    out = _in_mount_ns(
        b,
        f'mount -t proc proc "{b.path("/proc")}" || exit 9',
        "update-ldcache",
        "--folder",
        "/usr/lib/nv",
        fallback=fallback,
    )
    assert _rc(out) == 1 and out.count("gpuctk-hook: error") == 1, out
    assert os.path.islink(b.path(MUSL)) and os.readlink(b.path(MUSL)) == target  # not replaced by a copy
    _unchanged(host, before)


@BOTH
def test_musl_path_linked_to_bind_mounted_secret_is_not_copied(b, host, fallback):
    """A secret volume (here: a 0400 host file bind-mounted at /run/secrets/token) and the musl path
    file linked to it: the secret must not be rewritten as a 0644 file of the container."""
    write(b.path("/etc/alpine-release"), "3.19.0\n")
    write(b.path("/run/secrets/token"), "")
    os.symlink("/run/secrets/token", b.path(MUSL))
    before = snapshot(host)
    out = _in_mount_ns(
        b,
        f'mount --bind "{host}/secret" "{b.path("/run/secrets/token")}" || exit 9',
        "update-ldcache",
        fallback=fallback,
    )
    assert _rc(out) == 1, out
    assert os.path.islink(b.path(MUSL))
    for dirpath, _dirs, files in os.walk(b.root):
        for n in files:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p) and os.path.isfile(p):
                with open(p, "rb") as f:
                    assert b"TOP SECRET" not in f.read(), p
    _unchanged(host, before)


@BOTH
def test_chmod_refuses_hard_link_to_host_file(b, host, fallback):
    before = snapshot(host)
    os.makedirs(b.path("/usr/lib/nv"))
    os.link(os.path.join(host, "lib", "libhost.so.1.0"), b.path("/usr/lib/nv/libhost.so"))
    p = run_hook(b, "chmod", "--mode", "4777", "--path", "/usr/lib/nv/libhost.so", fallback=fallback)
    assert p.returncode == 0 and "hard links" in p.stderr, p.stderr
    _unchanged(host, before)


@BOTH
@pytest.mark.parametrize("how", ["literal", "via-link"])
def test_chmod_refuses_bind_mounted_host_file(b, host, fallback, how):
    write(b.path("/etc/hosts"), "")
    os.makedirs(b.path("/usr/lib/nv"))
    os.symlink("/etc/hosts", b.path("/usr/lib/nv/cfg"))
    before = snapshot(host)
    path = "/etc/hosts" if how == "literal" else "/usr/lib/nv/cfg"
    out = _in_mount_ns(
        b,
        f'mount --bind "{host}/params" "{b.path("/etc/hosts")}" || exit 9',
        "chmod",
        "--mode",
        "666",
        "--path",
        path,
        fallback=fallback,
    )
    assert _rc(out) == 0 and "refused" in out, out
    _unchanged(host, before)


def _fresh_procfs(tmp: str, cmd: str) -> str:
    """Run ``cmd`` (with $P = a brand-new procfs mount) in a private mount namespace: a new
    procfs shows the mode the kernel keeps for each of its objects, shared by every mount."""
    os.makedirs(tmp, exist_ok=True)
    script = f'P="{tmp}"; mount -t proc proc "$P" || exit 9; {cmd}'
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@BOTH
@pytest.mark.parametrize("how", ["literal", "via-link"])
def test_chmod_refuses_procfs_entries(b, tmp_path, fallback, how):
    """procfs keeps one mode per kernel object, shared by every procfs mount: a chmod of
    <root>/proc/iomem would change /proc/iomem for every later procfs mount on the host."""
    os.makedirs(b.path("/usr/lib/nv"))
    os.symlink("/proc/iomem", b.path("/usr/lib/nv/x"))
    probe = str(tmp_path / "fresh-proc")
    mode = int(_fresh_procfs(probe, 'stat -c %a "$P/iomem"'), 8)
    host_mode = stat.S_IMODE(os.stat("/proc/iomem").st_mode)
    new = 0o440 if mode != 0o440 else 0o400
    path = "/proc/iomem" if how == "literal" else "/usr/lib/nv/x"
    try:
        out = _in_mount_ns(
            b,
            f'mount -t proc proc "{b.path("/proc")}" || exit 9',
            "chmod",
            "--mode",
            f"{new:o}",
            "--path",
            path,
            fallback=fallback,
        )
        assert _rc(out) == 0 and "refused" in out, out
        assert int(_fresh_procfs(probe, 'stat -c %a "$P/iomem"'), 8) == mode
        assert stat.S_IMODE(os.stat("/proc/iomem").st_mode) == host_mode
    finally:  # should the refusal ever regress, give the kernel object its mode back
        if int(_fresh_procfs(probe, 'stat -c %a "$P/iomem"'), 8) != mode:
            _fresh_procfs(probe, f'chmod {mode:o} "$P/iomem"')


@BOTH
def test_create_symlinks_never_follows_an_image_link_onto_a_volume(b, host, fallback):
    """The image links /usr/lib/nv to /data, where a host directory is mounted: links the spec
    asks for below /usr/lib/nv would land on the host. Refused (the hook fails, one line)."""
    os.makedirs(b.path("/data"))
    os.makedirs(b.path("/usr/lib"))
    os.symlink("/data", b.path("/usr/lib/nv"))
    before = snapshot(host)
    out = _in_mount_ns(
        b,
        f'mount --bind "{host}/lib" "{b.path("/data")}" || exit 9',
        "create-symlinks",
        "--link",
        "libnvidia-ml.so.1::/usr/lib/nv/libnvidia-ml.so",
        fallback=fallback,
    )
    assert _rc(out) == 1 and "mount point" in out, out
    _unchanged(host, before)


def test_ld_so_cache_tilde_hard_link_is_removed_before_ldconfig(b, host):
    """glibc ldconfig writes ``<cache>~`` with O_TRUNC, not O_EXCL: an image shipping that name as a
    hard link to a host file had the host file overwritten with the new cache."""
    before = snapshot(host)
    os.link(os.path.join(host, "etc", "ld.so.cache"), b.path("/etc/ld.so.cache~"))
    p = run_hook(b, "update-ldcache")
    assert p.returncode == 0, p.stderr
    assert os.path.isfile(b.path("/etc/ld.so.cache"))
    _unchanged(host, before)


def test_ldconfig_cannot_write_into_host_volumes(b, host):
    """A host directory bind-mounted into the container (a volume) and the image's ld.so.conf
    listing it: ldconfig would create soname links there, on the host. Sub-mounts are
    read-only inside ldconfig's sandbox."""
    libs = [n for n in os.listdir(os.path.join(host, "lib")) if n.startswith("libz.so.1.")]
    if not libs:
        pytest.fail("no libz on this host to build the fixture")
    os.makedirs(b.path("/data"))
    write(b.path("/etc/ld.so.conf"), "/data\n")
    before = snapshot(host)
    out = _in_mount_ns(b, f'mount --bind "{host}/lib" "{b.path("/data")}" || exit 9', "update-ldcache")
    assert "rc=" in out, out
    assert not os.path.lexists(os.path.join(host, "lib", "libz.so.1"))
    _unchanged(host, before)


_SANDBOX_PROBE = """
import json, os, resource, sys
from gpuctk.hooks import ldcache
from gpuctk.hooks.confine import Root

rfd, wfd = os.pipe()

def fake_execve(path, args, env):  # runs in the pivoted child, instead of ldconfig
    out = {}
    for name, p in (("core_pattern", "/proc/sys/kernel/core_pattern"), ("volume", "/data/probe")):
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
            out[name] = "writable"
        except OSError as exc:
            out[name] = exc.errno
    out["proc_pids"] = sorted(n for n in os.listdir("/proc") if n.isdigit())
    out["proc_has_sys"] = os.path.exists("/proc/sys/kernel")
    out["as"] = resource.getrlimit(resource.RLIMIT_AS)[0]
    out["core"] = resource.getrlimit(resource.RLIMIT_CORE)[0]
    out["mounts"] = open("/proc/self/mountinfo").read() if os.path.exists("/proc/self/mountinfo") else ""
    os.write(wfd, json.dumps(out).encode())
    os._exit(0)

ldcache.os.execve = fake_execve
with Root(sys.argv[1]) as r:
    assert ldcache.run_ldconfig(r, None) == 0
os.close(wfd)
sys.stdout.write(os.read(rfd, 1 << 20).decode())
"""


def test_ldconfig_sandbox_proc_is_read_only_and_volumes_are_not_carried_writable(b, host):
    """Observed from inside the sandbox (execve intercepted): /proc/sys is not writable, a
    bind-mounted host dir is read-only, only the sandbox's own PID is visible, rlimits set."""
    import sys

    os.makedirs(b.path("/data"))
    before = snapshot(host)
    script = (
        f'mount --bind "{host}/lib" "{b.path("/data")}" && mount -t proc proc "{b.path("/proc")}" && '
        f'exec "{sys.executable}" -c "$0" "{b.root}"'
    )
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script, _SANDBOX_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["core_pattern"] != "writable"
    assert got["volume"] == 30  # EROFS
    assert got["proc_pids"] == ["1"]
    assert got["as"] == 1 << 30 and got["core"] == 0
    assert " proc " not in got["mounts"].split("\n")[0] or "ro," in got["mounts"]
    assert not os.path.exists(os.path.join(host, "lib", "probe"))
    _unchanged(host, before)


# ================================================================ §3 deadline and budgets
@pytest.mark.parametrize("target", ["/proc/kmsg", "/dev/zero-node", "fifo"])
def test_ld_so_conf_that_blocks_is_refused_before_opening(b, target):
    """/etc/ld.so.conf linked to /proc/kmsg (a blocking read that also consumes the host's kernel
    log), a character device, a FIFO: refused before any read; the hook ends (deadline at worst)."""
    if target == "fifo":
        os.mkfifo(b.path("/etc/ld.so.conf"))
        setup = "true"
    elif target == "/dev/zero-node":
        os.makedirs(b.path("/dev"))
        os.mknod(b.path("/etc/ld.so.conf"), 0o644 | stat.S_IFCHR, os.makedev(1, 5))
        setup = "true"
    else:
        os.symlink(target, b.path("/etc/ld.so.conf"))
        setup = f'mount -t proc proc "{b.path("/proc")}" || exit 9'
    out = _in_mount_ns(b, setup, "--timeout=3", "update-ldcache", timeout=120)
    assert "rc=" in out, out  # it ended
    assert "Traceback" not in out


def test_long_dotdot_link_chain_is_cut_by_the_lookup_budget(b):
    """/etc behind 39 links of 4000 bytes of ``a/../`` each: 0.4 s per lookup under the fallback
    resolver, minutes in all. The per-lookup component cap ends each lookup early."""
    os.makedirs(b.path("/a"))
    os.makedirs(b.path("/real-etc/ld.so.conf.d"))
    prev = "/real-etc"
    for i in range(39):
        name = f"/l{i}"
        os.symlink("a/../" * 800 + prev.lstrip("/"), b.path(name))
        prev = name
    shutil.rmtree(b.path("/etc"))
    os.symlink(prev.lstrip("/"), b.path("/etc"))
    p = run_hook(b, "update-ldcache", "--folder", "/x", fallback="1", hook_timeout=30, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    assert "Traceback" not in p.stderr and "deadline" not in p.stderr, p.stderr


def test_hook_stuck_on_stdin_ends_at_its_deadline(b):
    """A runtime (or a test) that never closes stdin: the hook fails at its deadline, one line."""
    rfd, wfd = os.pipe()  # we hold the write end open and never write
    try:
        proc = subprocess.Popen(
            [venv_script("gpuctk-hook"), "--timeout=1", "create-symlinks", "--link", "a::/b"],
            stdin=rfd,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(rfd)
        os.close(wfd)
    assert proc.returncode == 1 and "deadline" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("hook", ["update-ldcache", "disable-device-node-modification"])
def test_killed_hook_leaves_no_temp_dir(hook):
    """SIGKILL at random points of hooks that mount: nothing of theirs stays in /tmp (the mask
    tmpfs is created detached; ldconfig's sandbox binds the root onto itself). Each run sees a
    private, initially empty /tmp (so other test runs on the machine do not interfere)."""
    import tempfile

    base = tempfile.mkdtemp(prefix="gpuctk-hooktest-", dir="/var/tmp")
    try:
        b = make_hook_bundle(os.path.join(base, "c"))
        write(b.path("/proc/driver/nvidia/params"), "ModifyDeviceFiles: 1\n")
        params = os.path.join(base, "host-params")
        write(params, "ModifyDeviceFiles: 1\n")
        private_tmp = os.path.join(base, "tmp")
        os.makedirs(private_tmp)
        args = ["--host-params-file", params] if hook == "disable-device-node-modification" else []
        quoted = " ".join(f"'{a}'" for a in [hook, *args])
        hook_exe = venv_script("gpuctk-hook")
        # A checkout under /tmp (a CI clone, say) would vanish under the private /tmp: bind its
        # top directory back in, through a handle taken before the overlay.
        real = os.path.realpath(hook_exe)
        keep = ""
        if real.startswith("/tmp/"):
            keep = real.split("/")[2]
            handle = os.path.join(base, "keep")
            os.makedirs(handle)
            script = (
                f'mount --bind "/tmp/{keep}" "{handle}" || exit 9\n'
                f'mount --bind "{private_tmp}" /tmp || exit 9\n'
                f'mkdir -p "/tmp/{keep}" && mount --bind "{handle}" "/tmp/{keep}" || exit 9\n'
                f'exec "{hook_exe}" {quoted}'
            )
        else:
            script = f'mount --bind "{private_tmp}" /tmp || exit 9\nexec "{hook_exe}" {quoted}'
        rng = random.Random(13)
        for _ in range(12):
            proc = subprocess.Popen(
                [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert proc.stdin is not None
            proc.stdin.write(b.state.encode())
            proc.stdin.close()
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        # and one run to completion: it too leaves nothing
        p = subprocess.run(
            [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
            input=b.state,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        left = sorted(set(os.listdir(private_tmp)) - {keep})
        assert left == [], left
        if keep:  # only the (empty) mount point of the checkout
            assert os.listdir(os.path.join(private_tmp, keep)) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ================================================================ §4/§5 and issue 17: state input
@pytest.mark.parametrize(
    "state",
    [
        {"root": "/tmp/x\u0000y"},
        {"bundle": "/tmp/x\u0000y"},
        "deep",
        "huge",
        {"root": ["not", "a", "string"], "bundle": 7},
    ],
    ids=["nul-in-root", "nul-in-bundle", "deep-nesting", "huge", "wrong-types"],
)
def test_hostile_state_is_a_one_line_error(state):
    if state == "deep":
        data = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    elif state == "huge":
        data = b'{"bundle": "' + b"x" * (8 << 20) + b'"}'
    else:
        data = json.dumps(state).encode()
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "create-symlinks", "--link", "a::/b"], input=data, capture_output=True
    )
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "huge", "dir"])
def test_container_spec_that_is_not_a_small_regular_file(tmp_path, kind):
    """--container-spec on a FIFO with no writer, /dev/zero, a huge (sparse) file, a directory:
    one line, exit 1, no hang and no memory blow-up."""
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif kind == "huge":
        path = str(tmp_path / "huge.json")
        with open(path, "wb") as f:
            f.truncate(8 << 30)
    elif kind == "dir":
        path = str(tmp_path)
    else:
        path = kind
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "create-symlinks", "--container-spec", path, "--link", "a::/b"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_bundle_config_json_fifo_does_not_block(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.mkfifo(bundle / "config.json")
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "create-symlinks", "--link", "a::/b"],
        input=json.dumps({"bundle": str(bundle)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "not a regular file" in p.stderr, p.stderr


# ================================================================ §5 the root is the host's /
@pytest.mark.parametrize(
    "args",
    [
        ["create-symlinks", "--link", "x::/gpuctk-should-not-exist"],
        ["update-ldcache", "--folder", "/gpuctk-should-not-exist"],
        ["chmod", "--mode", "777", "--path", "/etc/hostname"],
        ["enable-cuda-compat", "--host-driver-version", "1.1.1"],
        ["update-application-profile"],
        ["disable-device-node-modification"],
    ],
    ids=lambda a: a[0],
)
def test_every_hook_refuses_a_root_that_is_host_slash_by_device_and_inode(tmp_path, args):
    """The root is a (read-only) bind mount of the host's / (realpath says it is not "/"):
    refused by device and inode in every hook, before anything is touched."""
    root = tmp_path / "bundle" / "rootfs"
    root.mkdir(parents=True)
    (tmp_path / "bundle" / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}}))
    state = json.dumps({"bundle": str(tmp_path / "bundle")})
    hook = venv_script("gpuctk-hook")
    hostname_mode = (
        stat.S_IMODE(os.stat("/etc/hostname").st_mode) if os.path.exists("/etc/hostname") else None
    )
    quoted = " ".join(f"'{a}'" for a in args)
    # read-only bind: should the check ever regress, the hook fails on EROFS instead of writing the host
    script = f'mount --bind / "{root}" && mount -o remount,bind,ro "{root}" || exit 9\n"{hook}" {quoted}; echo rc=$?'
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rc=1" in p.stdout and "host's /" in p.stderr, p.stdout + p.stderr
    assert not os.path.lexists("/gpuctk-should-not-exist")
    if hostname_mode is not None:
        assert stat.S_IMODE(os.stat("/etc/hostname").st_mode) == hostname_mode
