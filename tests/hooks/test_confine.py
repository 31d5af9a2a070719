"""The confinement module, through both resolvers (openat2 and the component walk)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuctk.hooks.confine import Root, openat2_available
from support.hooks import make_decoy, read_file, snapshot, write
from support.tools import missing

MODES = [pytest.param(True, id="fallback"), pytest.param(False, id="openat2")]


@pytest.fixture(params=MODES)
def fallback(request):
    if not request.param and not openat2_available():
        missing("kernel without openat2")
    return request.param


@pytest.fixture
def rootdir(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    return str(r)


def test_openat2_is_used_on_this_kernel(rootdir):
    # the machine runs a 6.x kernel: the fast path must be the one exercised by default
    assert openat2_available()
    with Root(rootdir) as r:
        assert r.fallback is False


def test_resolver_choice_ignores_the_environment(rootdir, monkeypatch):
    # the image may set the hook's environment: the old switch must not select the resolver
    monkeypatch.setenv("GPUCTK_CONFINE_FALLBACK", "1")
    with Root(rootdir) as r:
        assert r.fallback is False
    with Root(rootdir, fallback=True) as r:
        assert r.fallback is True


def test_plain_files_and_dirs(rootdir, fallback):
    write(os.path.join(rootdir, "etc/os-release"), "ID=test\n")
    with Root(rootdir, fallback=fallback) as r:
        assert r.read_text("/etc/os-release") == "ID=test\n"
        assert r.read_text("etc/../etc/./os-release") == "ID=test\n"
        assert r.is_dir("/etc") and r.is_file("/etc/os-release") and not r.exists("/nope")
        os.close(r.mkdirs("/a/b/c", 0o750))
        assert os.path.isdir(os.path.join(rootdir, "a/b/c"))
        assert os.stat(os.path.join(rootdir, "a/b/c")).st_mode & 0o777 == 0o750
        r.write_file("/a/b/c/f.conf", "x\n", 0o600)
        assert read_file(os.path.join(rootdir, "a/b/c/f.conf")) == "x\n"
        assert os.stat(os.path.join(rootdir, "a/b/c/f.conf")).st_mode & 0o777 == 0o600
        assert sorted(r.listdir("/a/b/c")) == ["f.conf"]  # no temp file left behind
        assert r.unlink("/a/b/c/f.conf") and not r.unlink("/a/b/c/f.conf")


@pytest.mark.parametrize("target", ["/", "../../../..", "/../..", "../"])
def test_escaping_links_are_clamped_to_the_root(rootdir, fallback, target, tmp_path):
    decoy = make_decoy(str(tmp_path))
    before = snapshot(decoy)
    os.symlink(target, os.path.join(rootdir, "up"))
    with Root(rootdir, fallback=fallback) as r:
        # "up/<decoy>" must mean <root>/<decoy>, never the host's decoy
        host_rel = decoy.lstrip("/")
        r.write_file(f"/up/{host_rel}/etc/ld.so.cache", "container")
        r.symlink("x", f"/up/{host_rel}/lib/libhost.so.1")
    assert snapshot(decoy) == before
    assert read_file(os.path.join(rootdir, decoy.lstrip("/"), "etc/ld.so.cache")) == "container"


def test_absolute_link_resolves_inside(rootdir, fallback):
    write(os.path.join(rootdir, "real/etc/x"), "inside")
    os.symlink("/real/etc", os.path.join(rootdir, "etc"))
    with Root(rootdir, fallback=fallback) as r:
        assert r.read_text("/etc/x") == "inside"
        r.write_file("/etc/y", "new")
    assert read_file(os.path.join(rootdir, "real/etc/y")) == "new"
    assert os.path.islink(os.path.join(rootdir, "etc"))


def test_final_dangling_link_created_inside(rootdir, fallback):
    name = f"gpuctk-confine-test-{os.getpid()}"
    os.symlink("/" + name, os.path.join(rootdir, "dangling"))
    with Root(rootdir, fallback=fallback) as r:
        fd = r.open("/dangling", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"z")
        os.close(fd)
    assert not os.path.exists("/" + name)  # the host's / was never touched
    assert read_file(os.path.join(rootdir, name)) == "z"


def test_loop_and_notdir(rootdir, fallback):
    os.symlink("b", os.path.join(rootdir, "a"))
    os.symlink("a", os.path.join(rootdir, "b"))
    write(os.path.join(rootdir, "file"), "")
    with Root(rootdir, fallback=fallback) as r:
        with pytest.raises(OSError) as ei:
            r.read_text("/a")
        assert ei.value.errno == errno.ELOOP
        with pytest.raises(NotADirectoryError):
            r.read_text("/file/x")
        assert r.stat("/file/x") is None


def test_symlink_idempotent_and_atomic(rootdir, fallback):
    with Root(rootdir, fallback=fallback) as r:
        assert r.symlink("libfoo.so.1", "/usr/lib/libfoo.so") is True
        ino = os.lstat(os.path.join(rootdir, "usr/lib/libfoo.so")).st_ino
        assert r.symlink("libfoo.so.1", "/usr/lib/libfoo.so") is False  # correct link: kept
        assert os.lstat(os.path.join(rootdir, "usr/lib/libfoo.so")).st_ino == ino
        assert r.symlink("libfoo.so.2", "/usr/lib/libfoo.so") is True  # wrong target: replaced
        write(os.path.join(rootdir, "usr/lib/regular"), "data")
        assert r.symlink("t", "/usr/lib/regular") is True  # a file: replaced too
        assert r.readlink("/usr/lib/regular") == "t"
        assert r.readlink("/usr/lib/libfoo.so") == "libfoo.so.2"
        assert sorted(os.listdir(os.path.join(rootdir, "usr/lib"))) == ["libfoo.so", "regular"]


def test_chmod_through_fd(rootdir, fallback):
    write(os.path.join(rootdir, "bin/tool"), "", 0o600)
    os.symlink("/bin/tool", os.path.join(rootdir, "alias"))
    with Root(rootdir, fallback=fallback) as r:
        assert r.chmod("/alias", 0o755) is True
        assert r.chmod("/bin/tool", 0o755) is False
    assert os.stat(os.path.join(rootdir, "bin/tool")).st_mode & 0o7777 == 0o755


@pytest.mark.integration  # root: unshare + a procfs mount
def test_magic_links_never_reach_the_host(rootdir, fallback, tmp_path):
    """A procfs mounted inside the root offers /proc/self/root -> host /; both resolvers must refuse or
    re-read it inside the root."""
    decoy = make_decoy(str(tmp_path))
    before = snapshot(decoy)
    proc = os.path.join(rootdir, "proc")
    os.makedirs(proc)
    os.symlink("/proc/self/root" + decoy, os.path.join(rootdir, "victim"))
    script = (
        "import sys; from gpuctk.hooks.confine import Root\n"
        f"r = Root({rootdir!r}, fallback={fallback!r})\n"
        "try:\n"
        "    r.write_file('/victim/etc/ld.so.cache', 'pwned')\n"
        "    print('wrote')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    p = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'mount -t proc proc {proc} && exec "$0" -c "$1"',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert snapshot(decoy) == before
    if fallback:
        # the link text was re-resolved inside the root: the write landed under <root>/proc/... or failed
        assert p.stdout.startswith(("wrote", "refused"))
    else:
        assert p.stdout.strip() in (f"refused {errno.ELOOP}", f"refused {errno.EXDEV}")


# ------------------------------------------------------------------ both resolvers agree
NAMES = ["a", "b", "c", "..", ".", "/"]
link_targets = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map(
    lambda parts: ("/" if parts[0] == "/" else "") + "/".join(p for p in parts if p != "/")
)
paths = st.lists(st.sampled_from(["a", "b", "c", "..", "x", "d"]), min_size=0, max_size=5).map("/".join)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.dictionaries(st.sampled_from(["a", "b", "d/c", "d/b"]), link_targets, max_size=3), path=paths)
def test_resolvers_agree_and_stay_inside(tmp_path_factory, links, path):
    if not openat2_available():
        missing("kernel without openat2")
    base = tmp_path_factory.mktemp("agree")
    root = base / "root"
    (root / "d").mkdir(parents=True)
    (base / "a").mkdir()  # decoys next to the root, reachable only by escaping
    (base / "x").write_text("outside")
    for name in ("a", "b", "c", "x"):
        if name not in links and not (root / name).exists():
            (root / name).mkdir()
    for link, target in links.items():
        if (root / link).exists() or (root / link).is_symlink():
            (root / link).rmdir()
        os.symlink(target or ".", root / link)
    inside = {
        (os.lstat(os.path.join(dp, n)).st_dev, os.lstat(os.path.join(dp, n)).st_ino)
        for dp, dns, fns in os.walk(root)
        for n in dns + fns
    }
    inside.add((os.stat(root).st_dev, os.stat(root).st_ino))
    results: list[tuple[int, int] | None] = []
    for fallback in (False, True):
        with Root(str(root), fallback=fallback) as r:
            try:
                fd = r.open(path, os.O_PATH)
            except OSError:
                results.append(None)
                continue
            st_ = os.fstat(fd)
            os.close(fd)
            assert (st_.st_dev, st_.st_ino) in inside, (fallback, path, links)
            results.append((st_.st_dev, st_.st_ino))
    assert results[0] == results[1], (path, links)
