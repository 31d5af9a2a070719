"""update-ldcache's no-op case (gpuctk.hooks.ldfresh): a root whose cache is already what a
run would write gets neither new conf files nor an ldconfig run; any change that could make
the cache stale (a new library, other folders, a mount point on a folder, a future-dated
cache, a leftover ``ld.so.cache~``) runs ldconfig as before."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gpuctk.hooks.confine import Root
from gpuctk.hooks.ldfresh import ldcache_up_to_date
from support.hooks import host_libz, make_hook_bundle, run_hook, write
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration  # root: namespaces and the host's ldconfig
FOLDER = "/usr/local/nvidia/lib64"


@pytest.fixture
def b(tmp_path):
    require_root()
    b = make_hook_bundle(str(tmp_path / "c"))
    os.makedirs(b.path(FOLDER))
    os.makedirs(b.path("/proc"))
    shutil.copy(host_libz(), b.path(FOLDER))
    return b


def _cache_id(b) -> tuple[int, int]:
    st = os.stat(b.path("/etc/ld.so.cache"))
    return st.st_ino, st.st_mtime_ns


def _ldcache(b, *folders: str) -> subprocess.CompletedProcess[str]:
    args = [a for f in (folders or (FOLDER,)) for a in ("--folder", f)]
    p = run_hook(b, "--debug", "update-ldcache", *args)
    assert p.returncode == 0, p.stderr
    return p


def _age(b, *paths: str, by_s: int = 120) -> None:
    """Move mtimes into the past, as if the first run happened a while ago."""
    for p in paths:
        st = os.stat(b.path(p))
        os.utime(b.path(p), ns=(st.st_atime_ns, st.st_mtime_ns - by_s * 10**9))


def _settled(b) -> None:
    """The state after a first run, aged: every scanned dir and conf file older than the cache."""
    _ldcache(b)
    d = "/etc/ld.so.conf.d"
    _age(b, "/etc/ld.so.conf", d, *(f"{d}/{n}" for n in os.listdir(b.path(d))), FOLDER)
    for s in ("/lib", "/usr/lib", "/lib64", "/usr/lib64", f"/lib/{os.uname().machine}-linux-gnu"):
        if os.path.isdir(b.path(s)):
            _age(b, s)


def test_second_run_changes_nothing_and_runs_no_ldconfig(b):
    _settled(b)
    before = _cache_id(b), sorted(os.listdir(b.path("/etc/ld.so.conf.d")))
    p = _ldcache(b)
    assert "already up to date" in p.stderr
    assert (_cache_id(b), sorted(os.listdir(b.path("/etc/ld.so.conf.d")))) == before
    # and the hook really did not exec ldconfig: a missing ldconfig is no error in the no-op case
    p = run_hook(b, "update-ldcache", "--folder", FOLDER, "--ldconfig-path", "/nonexistent/ldconfig")
    assert p.returncode == 0, p.stderr


def test_a_new_library_in_a_folder_reruns_ldconfig(b):
    _settled(b)
    before = _cache_id(b)
    shutil.copy(host_libz(), b.path(f"{FOLDER}/libz-extra.so.1"))
    p = _ldcache(b)
    assert "already up to date" not in p.stderr and _cache_id(b) != before


def test_other_folders_rerun_ldconfig(b):
    _settled(b)
    os.makedirs(b.path("/opt/other"))
    _age(b, "/opt/other")
    before = _cache_id(b)
    p = _ldcache(b, FOLDER, "/opt/other")
    assert "already up to date" not in p.stderr and _cache_id(b) != before


@pytest.mark.parametrize("spoil", ["future-cache", "tilde", "no-conf", "extra-conf"])
def test_doubt_means_run(b, spoil):
    _settled(b)
    if spoil == "future-cache":
        os.utime(b.path("/etc/ld.so.cache"), ns=(0, (10**10) * 10**9))
    elif spoil == "tilde":
        write(b.path("/etc/ld.so.cache~"), "x")
    elif spoil == "no-conf":
        for n in os.listdir(b.path("/etc/ld.so.conf.d")):
            os.unlink(b.path(f"/etc/ld.so.conf.d/{n}"))
    else:
        write(b.path("/etc/ld.so.conf.d/00-nvcr-deadbeef.conf"), FOLDER + "\n")
    with Root(b.root) as r:
        assert not ldcache_up_to_date(r, [FOLDER])


def test_a_folder_that_is_a_mount_point_reruns_ldconfig(b, tmp_path):
    """A folder bind-mounted from the host keeps the host's (old) mtime: never trusted."""
    _settled(b)
    src = tmp_path / "hostlibs"
    src.mkdir()
    shutil.copy(host_libz(), src)
    os.utime(src, ns=(0, 10**9))  # 1970: older than any cache
    before = _cache_id(b)
    script = f'mount --bind "{src}" "{b.path(FOLDER)}" || exit 9\n"{venv_script("gpuctk-hook")}" --debug update-ldcache --folder {FOLDER}'
    p = subprocess.run(
        [require_tool("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "already up to date" not in p.stderr and _cache_id(b) != before


def test_run_steps_noop_case_runs_no_ldconfig(b):
    """The whole generated step list on a settled root: one process, no ldconfig, no change."""
    os.makedirs(b.path("/opt"))
    os.symlink(f"{FOLDER}/x", b.path("/opt/link"))  # what a first run left
    _settled(b)
    steps = [
        ["create-symlinks", "--link", f"{FOLDER}/x::/opt/link"],
        ["update-ldcache", "--folder", FOLDER, "--ldconfig-path", "/nonexistent/ldconfig"],
    ]
    words = [w for s in steps for w in (str(len(s)), *s)]
    before = _cache_id(b)
    again = run_hook(b, "run-steps", *words)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert _cache_id(b) == before
