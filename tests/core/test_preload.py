"""gpuctk._preload: the per-container processes' modules from one fresh bundle, or not at all.

Each case runs a fresh ``python -I -S`` against a copy of the package (so bundles can be made
stale, foreign or hostile without touching the real one) and reports what ``load`` did and
where every gpuctk module in ``sys.modules`` came from.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gpuctk
from gpuctk import _preload
from gpuctk.install.preload import PreloadBuildError, build, build_entry, record
from support.hooks import make_hook_bundle
from support.tools import require_root, require_tool, venv_script

PKG = Path(gpuctk.__file__).resolve().parent
TAG = sys.implementation.cache_tag

_PROBE = """
import json, sys
sys.path.append(sys.argv[1])
from gpuctk._preload import load
used = load(sys.argv[2])
mods = {n: type(m.__spec__.loader).__name__ for n, m in sys.modules.items() if n.startswith("gpuctk")}
for root in sys.argv[3:]:
    __import__(root)
ok = all(getattr(sys.modules[p], c) is sys.modules[p + "." + c]
         for n in list(sys.modules) if n.startswith("gpuctk.")
         for p, _, c in [n.rpartition(".")])
print(json.dumps({"used": used, "modules": mods, "bound": ok}))
"""


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    dst = tmp_path / "site" / "gpuctk"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def probe(pkg: Path, entry: str = "hook", *imports: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _PROBE, str(pkg.parent), entry, *imports],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_fresh_bundle_loads_every_module_of_the_entry(pkg: Path) -> None:
    path = build_entry("hook", str(pkg))
    assert path == _preload.bundle_path("hook", str(pkg))
    out = probe(pkg, "hook", "gpuctk.hooks.main")
    assert out["used"] is True
    bundled = {n for n, loader in out["modules"].items() if loader == "_BundleLoader"}
    assert {"gpuctk.hooks.main", "gpuctk.hooks.confine", "gpuctk.hooks._libc", "gpuctk.fileio"} <= bundled
    assert set(out["modules"]) - bundled == {"gpuctk", "gpuctk._preload"}  # imported before the bundle
    assert out["bound"]  # gpuctk.hooks.main is an attribute of gpuctk.hooks, as after `import`


def test_the_bundle_is_in_completion_order_and_from_this_package(pkg: Path) -> None:
    build_entry("hook", str(pkg))
    with open(_preload.bundle_path("hook", str(pkg)), "rb") as f:
        head, _magic, tag, modules = marshal.loads(f.read())
    assert head == _preload.FORMAT and tag == sys.implementation.cache_tag
    names = [m[0] for m in modules]
    # a module's module-level imports complete before it does
    assert names.index("gpuctk.errors") < names.index("gpuctk.hooks.main")
    assert names.index("gpuctk.hooks._libc") < names.index("gpuctk.hooks.confine")
    assert all(src.startswith(str(pkg) + "/") for _n, _p, src, *_ in modules)
    order = [n for n, _f, _k in record(_preload.ENTRIES["hook"], str(pkg))]
    assert [n for n in order if n not in ("gpuctk", "gpuctk._preload")] == names


@pytest.mark.parametrize(
    "spoil",
    [
        "touch-source",
        "grow-source",
        "remove-source",
        "group-writable",
        "other-tag",
        "other-format",
        "garbage",
    ],
)
def test_anything_but_a_fresh_bundle_loads_nothing(pkg: Path, spoil: str) -> None:
    path = Path(build_entry("hook", str(pkg)))
    src = pkg / "hooks" / "simple.py"
    if spoil == "touch-source":
        st = src.stat()
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif spoil == "grow-source":
        st = src.stat()
        with open(src, "a") as f:
            f.write("\n")
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, other size
    elif spoil == "remove-source":
        (pkg / "hooks" / "steps.py").unlink()
    elif spoil == "group-writable":
        path.chmod(0o664)
    else:
        head, magic, tag, modules = marshal.loads(path.read_bytes())
        if spoil == "other-tag":
            tag = "cpython-0"
        elif spoil == "other-format":
            head = "gpuctk-preload 0"
        path.write_bytes(b"\x00garbage" if spoil == "garbage" else marshal.dumps((head, magic, tag, modules)))
    out = probe(pkg, "hook")
    assert out["used"] is False
    assert set(out["modules"]) == {"gpuctk", "gpuctk._preload"}  # nothing half-loaded


def test_a_source_outside_the_package_is_refused(pkg: Path) -> None:
    path = Path(build_entry("hook", str(pkg)))
    head, magic, tag, modules = marshal.loads(path.read_bytes())
    other = pkg.parent / "other" / "elsewhere.py"  # next to the package, on the same sys.path entry
    other.parent.mkdir()
    other.write_text("X = 1\n")
    st = other.stat()
    name, is_pkg, _src, _size, _mtime, code = modules[0]
    modules = ((name, is_pkg, str(other), st.st_size, st.st_mtime_ns, code), *modules[1:])
    path.write_bytes(marshal.dumps((head, magic, tag, modules)))
    assert probe(pkg, "hook")["used"] is False


def test_a_module_body_that_raises_unloads_everything(pkg: Path) -> None:
    path = Path(build_entry("hook", str(pkg)))
    head, magic, tag, modules = marshal.loads(path.read_bytes())
    i = [m[0] for m in modules].index("gpuctk.hooks.simple")
    name, is_pkg, src, size, mtime, _code = modules[i]
    bad = compile("raise RuntimeError('boom')", src, "exec")
    modules = (*modules[:i], (name, is_pkg, src, size, mtime, bad), *modules[i + 1 :])
    path.write_bytes(marshal.dumps((head, magic, tag, modules)))
    out = probe(pkg, "hook", "gpuctk.hooks.simple")  # the normal import still works afterwards
    assert out["used"] is False
    assert set(out["modules"]) == {"gpuctk", "gpuctk._preload"}


def test_no_bundle_is_not_an_error(pkg: Path) -> None:
    assert probe(pkg, "hook", "gpuctk.hooks.main") == {
        "used": False,
        "modules": {"gpuctk": "SourceFileLoader", "gpuctk._preload": "SourceFileLoader"},
        "bound": True,
    }


def test_build_reports_an_unwritable_package(pkg: Path) -> None:
    cache = pkg / "__pycache__"
    cache.mkdir(exist_ok=True)
    cache.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anyway: make the directory a file instead
            cache.chmod(0o755)
            shutil.rmtree(cache)
            cache.write_text("")
        warnings = build(str(pkg))
    finally:
        if cache.is_dir():
            cache.chmod(0o755)
    assert len(warnings) == len(_preload.ENTRIES)
    assert all("preload bundle" in w and "not written" in w for w in warnings)


def test_build_refuses_roots_that_do_not_import(pkg: Path) -> None:
    (pkg / "hooks" / "main.py").write_text("import gpuctk_no_such_module\n")
    with pytest.raises(PreloadBuildError, match="gpuctk_no_such_module"):
        build_entry("hook", str(pkg))


# ---------------------------------------------------------------- the installed entries


@pytest.fixture(scope="module")
def real_bundles() -> None:
    """This gpuctk's bundles, fresh (a source edited since `make venv` left them stale)."""
    assert build() == []


def _traced(argv: list[str], tmp_path: Path, env: dict[str, str], stdin: str = "") -> str:
    strace = require_tool("strace")
    log = tmp_path / "trace"
    p = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=openat", "-o", str(log), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return log.read_text()


def _gpuctk_code_opened(trace: str) -> list[str]:
    """gpuctk bytecode and sources the traced processes opened, apart from the two modules the
    launcher imports before the bundle (gpuctk/__init__, gpuctk/_preload)."""
    out = []
    for line in trace.splitlines():
        if "openat(" not in line or " = -1 " in line or '"' not in line:
            continue
        path = os.path.realpath(line.split('"')[1])
        if path.startswith(str(PKG) + "/") and path.endswith((".pyc", ".py", ".bin")):
            rel = os.path.relpath(path, PKG)
            if rel not in (
                f"__pycache__/__init__.{TAG}.pyc",
                f"__pycache__/_preload.{TAG}.pyc",
                "__init__.py",
                "_preload.py",
            ):
                out.append(rel.replace(sys.implementation.cache_tag, "TAG"))
    return out


def test_the_installed_hook_runs_from_its_bundle(real_bundles: None, tmp_path: Path) -> None:
    b = make_hook_bundle(str(tmp_path / "c"))
    steps = ["run-steps", "3", "create-symlinks", "--link", "t::/x", "1", "update-application-profile"]
    trace = _traced([venv_script("gpuctk-hook"), *steps], tmp_path, {"PATH": "/usr/bin:/bin"}, b.state)
    assert os.readlink(b.path("/x")) == "t"
    assert _gpuctk_code_opened(trace) == ["__pycache__/_preload-hook.TAG.bin"]


def test_the_installed_create_path_runs_from_its_bundle(real_bundles: None, tmp_path: Path) -> None:
    require_root()  # (the shim's caches are root only; without them the path is a cold one)
    spec_dir = tmp_path / "cdi"
    spec_dir.mkdir()
    (spec_dir / "gpu.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.5.0",
                "kind": "nvidia.com/gpu",
                "devices": [{"name": "0", "containerEdits": {"env": ["GPU0=yes"]}}],
            }
        )
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[nvidia-container-runtime]\nmode = "cdi"\nruntimes = ["/bin/true"]\n'
        f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{spec_dir}"]\n'
    )
    t = time.time_ns() - 60 * 10**9
    os.utime(cfg, ns=(t, t))
    # a CDI scan is cached only once every spec file is 2 s old (gpuctk.cdi.cache; a ctime cannot
    # be set back): the warm path needs that cache
    time.sleep(max(0.0, 2.1 - (time.time() - os.stat(spec_dir / "gpu.json").st_ctime)))
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    env = {
        "PATH": "/usr/bin:/bin",
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg),
        "GPUCTK_CONFIG_CACHE_DIR": str(cache),
    }
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    request = {"ociVersion": "1.0.2", "process": {"args": ["true"], "env": ["NVIDIA_VISIBLE_DEVICES=0"]}}
    shim = venv_script("gpuctk-runtime")
    for _ in range(2):  # the first create fills the config and CDI caches: the second is the warm path
        (bundle / "config.json").write_text(json.dumps(request))
        trace = _traced([shim, "create", "--bundle", str(bundle), "cid"], tmp_path, env)
    assert "GPU0=yes" in json.loads((bundle / "config.json").read_text())["process"]["env"]
    assert _gpuctk_code_opened(trace) == ["__pycache__/_preload-runtime.TAG.bin"]
