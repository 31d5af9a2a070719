"""The CDI hooks as whole processes (`gpuctk-hook`, `gpuctk hook`), one behaviour per test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from gpuctk.hooks.argv import hook_argv
from gpuctk.hooks.confine import Root
from gpuctk.hooks.ldcache import host_env, write_conf
from gpuctk.hooks.ldconf import system_dirs, triplet
from gpuctk.hooks.params import masked_params
from gpuctk.hooks.simple import application_profile
from support.hooks import host_libz, make_hook_bundle, read_file, run_hook, write
from support.tools import require_root, require_tool, venv_script


@pytest.fixture
def b(tmp_path):
    return make_hook_bundle(str(tmp_path))


# ------------------------------------------------------------------ dispatch and state
def test_hook_argv_shapes():
    assert hook_argv("/usr/bin/nvidia-cdi-hook", "update-ldcache", ["--folder", "/x"]) == [
        "nvidia-cdi-hook",
        "update-ldcache",
        "--folder",
        "/x",
    ]
    assert hook_argv("/usr/bin/nvidia-ctk", "chmod", []) == ["nvidia-ctk", "hook", "chmod"]
    assert hook_argv("/opt/gpuctk", "noop", []) == ["gpuctk", "hook", "noop"]
    assert hook_argv("/venv/bin/gpuctk-hook", "noop", ["-a"]) == ["gpuctk-hook", "noop", "-a"]
    assert hook_argv("", "noop", []) == ["nvidia-cdi-hook", "noop"]


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-hook"],
        ["create-soname-symlinks", "--folder", "/x"],
        [],
        ["--some-global", "future-hook", "--x=1"],
    ],
)
def test_unknown_hook_is_a_warning(b, args):
    p = run_hook(b, *args)
    assert p.returncode == 0
    assert "warning" in p.stderr


def test_unknown_flag_on_known_hook_is_usage_error(b):
    p = run_hook(b, "create-symlinks", "--bogus")
    assert p.returncode == 2 and "flag provided but not defined: --bogus" in p.stderr
    p = run_hook(b, "chmod", "--path", "/x")
    assert p.returncode == 2 and "--mode" in p.stderr
    p = run_hook(b, "create-symlinks", "--link")
    assert p.returncode == 2 and "needs an argument" in p.stderr


def test_go_style_flags_and_help(b):
    p = run_hook(b, "create-symlinks", "-link", "a::/one", "--link=b::/two")
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/one")) == "a" and os.readlink(b.path("/two")) == "b"
    p = run_hook(b, "update-ldcache", "--help")
    assert p.returncode == 0 and "--folder" in p.stdout and "--ldconfig-path" in p.stdout


def test_quiet_silences_warnings(b):
    p = run_hook(b, "--quiet", "no-such-hook")
    assert p.returncode == 0 and p.stderr == ""


def test_bad_state_is_one_line_error(b):
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "create-symlinks", "--link", "a::/b"],
        input="{not json",
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "not valid JSON" in p.stderr and "Traceback" not in p.stderr


def test_missing_bundle_config(tmp_path):
    state = json.dumps({"bundle": str(tmp_path / "nope")})
    p = subprocess.run([venv_script("gpuctk-hook"), "noop"], input=state, capture_output=True, text=True)
    assert p.returncode == 0  # noop never reads anything
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "chmod", "--mode", "755", "--path", "/x"],
        input=state,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "config.json" in p.stderr


def test_container_spec_flag_and_state_root(tmp_path):
    root = tmp_path / "elsewhere"
    root.mkdir()
    spec = tmp_path / "state.json"
    spec.write_text(json.dumps({"bundle": str(tmp_path / "no-bundle"), "root": str(root)}))  # crun's "root"
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "create-symlinks", "--container-spec", str(spec), "--link", "t::/l"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(root / "l") == "t"


def test_relative_root_joined_with_bundle(b):
    p = run_hook(b, "create-symlinks", "--link", "libcuda.so.1::/usr/lib/libcuda.so")
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/usr/lib/libcuda.so")) == "libcuda.so.1"


def test_gpuctk_hook_subcommand_is_the_same(b):
    p = subprocess.run(
        [venv_script("gpuctk"), "hook", "create-symlinks", "--link=x::/y"],
        input=b.state,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/y")) == "x"
    p = subprocess.run(
        [venv_script("gpuctk"), "hook", "--quiet", "unknown-one"],
        input=b.state,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and p.stderr == ""


# ------------------------------------------------------------------ create-symlinks
def test_create_symlinks_idempotent_and_replacing(b):
    write(b.path("/usr/lib/libnvidia-x.so"), "not a link")
    os.makedirs(b.path("/usr/lib64"))
    os.symlink("wrong", b.path("/usr/lib64/libcuda.so"))
    args = [
        "--link",
        "libnvidia-x.so.550::/usr/lib/libnvidia-x.so",
        "--link",
        "libcuda.so.1::/usr/lib64/libcuda.so",
        "--link",
        "libcuda.so.1::/usr/lib64/libcuda.so",  # duplicates are fine
        "--link",
        "../../lib/firmware::/new/dir/fw",
    ]
    assert run_hook(b, "create-symlinks", *args).returncode == 0
    assert os.readlink(b.path("/usr/lib/libnvidia-x.so")) == "libnvidia-x.so.550"
    assert os.readlink(b.path("/usr/lib64/libcuda.so")) == "libcuda.so.1"
    assert os.readlink(b.path("/new/dir/fw")) == "../../lib/firmware"  # target written verbatim
    inode = os.lstat(b.path("/usr/lib64/libcuda.so")).st_ino
    assert run_hook(b, "create-symlinks", *args).returncode == 0
    assert os.lstat(b.path("/usr/lib64/libcuda.so")).st_ino == inode  # correct link: untouched


@pytest.mark.parametrize("bad", ["nocolons", "a::b::c", "::/x", "t::"])
def test_create_symlinks_rejects_bad_link(b, bad):
    p = run_hook(b, "create-symlinks", "--link", bad)
    assert p.returncode == 1 and "TARGET::LINK" in p.stderr


# ------------------------------------------------------------------ chmod
def test_chmod(b):
    write(b.path("/dev/dri/card0"), "", 0o600)
    write(b.path("/bin/x"), "", 0o755)
    p = run_hook(
        b, "chmod", "--mode", "755", "--path", "/dev/dri/card0", "--path", "/missing", "--path", "/bin/x"
    )
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(os.stat(b.path("/dev/dri/card0")).st_mode) == 0o755
    p = run_hook(b, "chmod", "--mode", "9z", "--path", "/bin/x")
    assert p.returncode == 1 and "octal" in p.stderr


# ------------------------------------------------------------------ update-application-profile
def test_application_profile_text():
    doc = json.loads(application_profile([0, 3]))
    assert doc["profiles"] == [{"name": "_container_", "settings": ["EGLVisibleDGPUDevices", "0x9"]}]
    assert doc["rules"] == [{"pattern": [], "profile": "_container_"}]


@pytest.mark.integration  # root: mknod / namespaces / the host's ldconfig
def test_update_application_profile(b):
    require_root()
    for minor in (1, 2):
        os.makedirs(b.path("/dev"), exist_ok=True)
        os.mknod(b.path(f"/dev/nvidia{minor}"), 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    os.mknod(b.path("/dev/nvidiactl"), 0o666 | stat.S_IFCHR, os.makedev(195, 255))
    p = run_hook(b, "update-application-profile")
    assert p.returncode == 0, p.stderr
    f = b.path("/etc/nvidia/nvidia-application-profiles-rc.d/10-container.conf")
    assert json.loads(read_file(f))["profiles"][0]["settings"] == ["EGLVisibleDGPUDevices", "0x6"]
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o444
    assert stat.S_IMODE(os.stat(os.path.dirname(f)).st_mode) == 0o555


def test_update_application_profile_no_gpus_is_noop(b):
    assert run_hook(b, "update-application-profile").returncode == 0
    assert not os.path.exists(b.path("/etc/nvidia"))


# ------------------------------------------------------------------ update-ldcache
def test_host_env_is_fixed(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/evil.so")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/evil")
    env = host_env()
    assert set(env) == {"PATH", "LC_ALL"}


def _conf_files(b):
    d = b.path("/etc/ld.so.conf.d")
    return {n: read_file(os.path.join(d, n)).split() for n in sorted(os.listdir(d))}


def test_conf_debian(b):
    write(b.path("/etc/debian_version"), "12\n")
    write(b.path("/etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n/opt/already\n")
    write(b.path("/etc/ld.so.conf.d/local.conf"), "/opt/local # comment\n")
    with Root(b.root) as r:
        write_conf(
            r, ["/usr/lib/x86_64-linux-gnu", "/opt/nv/lib", "/opt/already", "/opt/local", "/opt/nv/lib/"]
        )
    files = _conf_files(b)
    nvcr = [v for k, v in files.items() if k.startswith("00-nvcr-")]
    zz = [v for k, v in files.items() if k.startswith("zz-nvcr-")]
    assert nvcr == [["/opt/nv/lib"]]
    assert zz == [[f"/lib/{triplet()}", f"/usr/lib/{triplet()}", "/lib", "/usr/lib"]]
    # a second run replaces, not accumulates, its own files
    with Root(b.root) as r:
        write_conf(r, ["/opt/nv/lib"])
    assert len(_conf_files(b)) == 3


def test_conf_non_debian_creates_ld_so_conf(b):
    with Root(b.root) as r:
        write_conf(r, ["/usr/local/nvidia/lib64"])
    assert read_file(b.path("/etc/ld.so.conf")) == "include /etc/ld.so.conf.d/*.conf\n"
    zz = [v for k, v in _conf_files(b).items() if k.startswith("zz-nvcr-")]
    assert zz == [system_dirs(False)]
    assert "/lib64" in zz[0]


def test_conf_alpine_uses_musl_path(b):
    write(b.path("/etc/alpine-release"), "3.20\n")
    with Root(b.root) as r:
        write_conf(r, ["/usr/local/nvidia/lib64"])
        write_conf(r, ["/usr/local/nvidia/lib64"])
    import platform

    musl = read_file(b.path(f"/etc/ld-musl-{platform.machine()}.path")).splitlines()
    assert musl.count("/usr/local/nvidia/lib64") == 1 and "/usr/lib" in musl


def _make_lib_root(b):
    """A root with the host's libz in an injected folder."""
    src = host_libz()
    os.makedirs(b.path("/usr/local/nvidia/lib64"))
    with open(src, "rb") as f:
        write(b.path("/usr/local/nvidia/lib64/" + os.path.basename(src)), f.read())
    os.makedirs(b.path("/proc"), exist_ok=True)
    return os.path.basename(src)


def _cache_entries(b) -> str:
    return subprocess.run(
        [require_tool("ldconfig"), "-p", "-C", b.path("/etc/ld.so.cache")], capture_output=True, text=True
    ).stdout


@pytest.mark.integration  # root: mknod / namespaces / the host's ldconfig
@pytest.mark.parametrize("fallback", ["0", "1"])
def test_update_ldcache_rebuilds_cache(b, fallback):
    require_root()
    _make_lib_root(b)
    p = run_hook(b, "update-ldcache", "--folder", "/usr/local/nvidia/lib64", fallback=fallback)
    assert p.returncode == 0, p.stderr
    assert "/usr/local/nvidia/lib64/libz.so.1" in _cache_entries(b)
    assert os.path.islink(b.path("/usr/local/nvidia/lib64/libz.so.1"))  # ldconfig made the soname link


@pytest.mark.integration  # root: mknod / namespaces / the host's ldconfig
def test_update_ldcache_without_folders_still_rebuilds(b):
    require_root()
    _make_lib_root(b)
    write(b.path("/etc/ld.so.conf"), "/usr/local/nvidia/lib64\n")
    p = run_hook(b, "update-ldcache")
    assert p.returncode == 0, p.stderr
    assert "libz.so.1" in _cache_entries(b)


def test_update_ldcache_refuses_host_root(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"bundle": str(tmp_path), "root": "/"}))
    p = subprocess.run(
        [venv_script("gpuctk-hook"), "update-ldcache", "--container-spec", str(spec)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "refusing" in p.stderr


def test_update_ldcache_refuses_dynamic_ldconfig(b):
    p = run_hook(b, "update-ldcache", "--ldconfig-path", sys.executable)
    assert p.returncode == 1 and "dynamically linked" in p.stderr


def test_update_ldcache_missing_ldconfig(b):
    p = run_hook(b, "update-ldcache", "--ldconfig-path", "@/nonexistent/ldconfig")
    assert p.returncode == 1 and "/nonexistent/ldconfig" in p.stderr


# ------------------------------------------------------------------ disable-device-node-modification
def test_masked_params_text():
    text = "EnableMSI: 1\nModifyDeviceFiles: 1\nDeviceFileUID: 0\n"
    assert masked_params(text) == "EnableMSI: 1\nModifyDeviceFiles: 0\nDeviceFileUID: 0\n"
    assert masked_params("ModifyDeviceFiles: 0\n") is None
    assert masked_params("EnableMSI: 1\n") is None


def _params_run(b, host_text: str | None, tmp_path) -> subprocess.CompletedProcess[str]:
    host = tmp_path / "host-params"
    if host_text is not None:
        host.write_text(host_text)
    write(b.path("/proc/driver/nvidia/params"), "ModifyDeviceFiles: 1\nEnableMSI: 1\n")
    target = b.path("/proc/driver/nvidia/params")
    hook = venv_script("gpuctk-hook")
    script = (
        f'"{hook}" disable-device-node-modification --host-params-file "{host}" && '
        f'cat "{target}" && (echo x >> "{target}" && echo WRITABLE || echo READONLY)'
    )
    return subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration  # root: mknod / namespaces / the host's ldconfig
def test_disable_device_node_modification_masks(b, tmp_path):
    require_root()
    p = _params_run(b, "ModifyDeviceFiles: 1\nEnableMSI: 1\n", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "ModifyDeviceFiles: 0" in p.stdout and p.stdout.strip().endswith("READONLY")
    # the mount lived in the private namespace only
    assert read_file(b.path("/proc/driver/nvidia/params")).startswith("ModifyDeviceFiles: 1")


@pytest.mark.integration  # root: mknod / namespaces / the host's ldconfig
@pytest.mark.parametrize("host_text", [None, "ModifyDeviceFiles: 0\n"])
def test_disable_device_node_modification_noop(b, tmp_path, host_text):
    require_root()
    p = _params_run(b, host_text, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "ModifyDeviceFiles: 1" in p.stdout and p.stdout.strip().endswith("WRITABLE")


# ------------------------------------------------------------------ stdlib only
def test_hook_imports_are_stdlib_only():
    code = (
        "import sys\n"
        "import gpuctk.hooks.main, gpuctk.hooks.legacy, gpuctk.hooks.legacy_argv, gpuctk.hooks.ldcache\n"
        "import gpuctk.hooks.compat, gpuctk.hooks.params, gpuctk.hooks.simple, gpuctk.hooks.state\n"
        "import gpuctk.hooks.argv, gpuctk.config, gpuctk.request\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'gpuctk', '__main__'})\n"
        "print(','.join(bad))\n"
    )
    p = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def test_cdi_hook_path_stays_lean():
    """The modules every container start pays for: no argparse/re/json/typing/dataclasses."""
    code = (
        "import sys\n"
        "import gpuctk.hooks.main, gpuctk.hooks.state, gpuctk.hooks.confine, gpuctk.hooks.simple, gpuctk.hooks.ldcache\n"
        "import gpuctk.hooks.deadline, gpuctk.hooks.hostio\n"
        "from gpuctk._fastjson import loads\n"
        "assert loads('{\"bundle\": \"/b\", \"pid\": 1}') == {'bundle': '/b', 'pid': 1}\n"
        "heavy = {'argparse', 're', 'json', 'typing', 'dataclasses', 'tempfile', 'secrets', 'platform', 'inspect'}\n"
        "print(','.join(sorted(heavy & set(sys.modules))))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def test_state_forms(tmp_path):
    import io

    from gpuctk.errors import GpuctkError
    from gpuctk.hooks.state import load_state

    (tmp_path / "config.json").write_text(json.dumps({"root": {"path": "rfs"}}))
    s = load_state(io.BytesIO(json.dumps({"bundlePath": str(tmp_path), "pid": 9}).encode()))  # pre-1.0 key
    assert (s.root, s.pid, s.bundle) == (str(tmp_path / "rfs"), 9, str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"root": {"path": "/abs/root/"}}))
    assert load_state(io.BytesIO(json.dumps({"bundle": str(tmp_path)}).encode())).root == "/abs/root"
    (tmp_path / "config.json").write_text(json.dumps({"process": {}}))
    with pytest.raises(GpuctkError, match=r"root\.path"):
        load_state(io.BytesIO(json.dumps({"bundle": str(tmp_path)}).encode()))
    with pytest.raises(GpuctkError, match="bundle"):
        load_state(io.BytesIO(b"{}"))
    with pytest.raises(GpuctkError, match="JSON object"):
        load_state(io.BytesIO(b"[1]"))


def test_mountinfo_unescape():
    from gpuctk.hooks.ldcache import _unescape_mountinfo

    assert _unescape_mountinfo(b"/run/a\\040b\\011c") == "/run/a b\tc"
    assert _unescape_mountinfo(b"/x\\134y") == "/x\\y"
    assert _unescape_mountinfo("/tmp/é".encode()) == "/tmp/é"


def test_wildcard_match_agrees_with_fnmatch():
    import fnmatch

    from gpuctk.hooks.ldconf import wildcard_match

    names = ["a.conf", "a.confx", "", ".conf", "00-nvcr-1.conf", "x", "abc"]
    for pattern in ["*.conf", "*", "a?c", "a*", "*-nvcr-*.conf", "x", "**c", "?"]:
        for name in names:
            assert wildcard_match(pattern, name) == fnmatch.fnmatchcase(name, pattern), (pattern, name)


# ------------------------------------------------------------------ list flags, stdin spec (issue 12)
def test_link_flag_splits_comma_separated_values_like_upstream(b):
    p = run_hook(b, "create-symlinks", "--link", "a::/x,b::/y", "--link=c::/z")
    assert p.returncode == 0, p.stderr
    assert [os.readlink(b.path(n)) for n in ("/x", "/y", "/z")] == ["a", "b", "c"]


def test_folder_flag_splits_comma_separated_values_like_upstream(b):
    require_root()
    p = run_hook(b, "update-ldcache", "--folder", "/opt/a,/opt/b", "--folder=/opt/c")
    assert p.returncode == 0, p.stderr
    d = b.path("/etc/ld.so.conf.d")
    conf = next(n for n in os.listdir(d) if n.startswith("00-nvcr-"))
    assert read_file(os.path.join(d, conf)).splitlines() == ["/opt/a", "/opt/b", "/opt/c"]


def test_path_flag_splits_comma_separated_values_like_upstream(b):
    write(b.path("/a"), "", 0o600)
    write(b.path("/b"), "", 0o600)
    p = run_hook(b, "chmod", "--mode", "640", "--path", "/a,/b")
    assert p.returncode == 0, p.stderr
    assert [stat.S_IMODE(os.stat(b.path(n)).st_mode) for n in ("/a", "/b")] == [0o640, 0o640]


def test_container_spec_dash_reads_stdin(b):
    p = run_hook(b, "create-symlinks", "--container-spec", "-", "--link", "t::/from-stdin")
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/from-stdin")) == "t"


def test_debug_never_turns_errors_into_tracebacks(b, tmp_path):
    spec = tmp_path / "state.json"
    spec.write_text(json.dumps({"root": "/x\u0000y"}))
    p = run_hook(
        b,
        "create-symlinks",
        "--container-spec",
        str(spec),
        "--link",
        "a::/x",
        env={"NVIDIA_CTK_DEBUG": "true"},
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr and "NUL" in p.stderr, p.stderr


def test_timeout_flag_usage_errors(b):
    assert run_hook(b, "--timeout", "soon", "noop").returncode == 2
    assert run_hook(b, "--resolver=magic", "noop").returncode == 2
    assert run_hook(b, "--timeout=3", "--resolver=walk", "noop").returncode == 0
