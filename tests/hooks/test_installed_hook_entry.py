"""The *installed* hook executables start lean and take nothing from their environment.

runc starts ``gpuctk-hook`` (or a ``gpuctk install`` launcher naming it) once per container,
with an environment that may be the image's. The venv's ``gpuctk-hook``/``gpuctk-runtime-hook``
are the sh front end (src/gpuctk/hooks/scripts/gpuctk-hook): ``python -I -S`` with the
environment's own import path. The hook itself reads no variable to dump its modules, so what
the process opened comes from ``strace``: the interpreter's argv, and no ``re``/``json``/``ctypes``/
``typing`` module, no ``site`` (which imports ``sitecustomize``) and no ``.pth`` file opened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import gpuctk
from gpuctk.cli.main import main as gpuctk_main
from support.hooks import Bundle, make_hook_bundle
from support.tools import require_tool, venv_script

SOURCE = Path(__file__).resolve().parents[2] / "src" / "gpuctk" / "hooks" / "scripts" / "gpuctk-hook"
BANNED = (
    "re",
    "json",
    "typing",
    "argparse",
    "ctypes",
    "enum",
    "_distutils_hack",
    "sitecustomize",
    "usercustomize",
)
PLANT_MARK = "planted-ran"


def _steps(*steps: list[str]) -> list[str]:
    out: list[str] = ["run-steps"]
    for s in steps:
        out += [str(len(s)), *s]
    return out


@pytest.fixture
def b(tmp_path: Path) -> Bundle:
    return make_hook_bundle(str(tmp_path / "c"))


@pytest.fixture
def toolkit(tmp_path: Path) -> Path:
    """``gpuctk install``'s launchers for this environment."""
    tk = tmp_path / "tk"
    argv = [
        "install",
        "--toolkit-dir",
        str(tk),
        "--root",
        str(tmp_path / "root"),
        "--no-cdi-spec",
        "--no-units",
    ]
    assert gpuctk_main(argv) == 0
    return tk


def _exe(which: str, toolkit: Path) -> list[str]:
    if which == "venv":
        return [venv_script("gpuctk-hook")]
    if which == "nvidia-ctk":
        return [str(toolkit / "nvidia-ctk"), "hook"]
    link = toolkit / which
    assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(venv_script("gpuctk-hook"))
    return [str(link)]


def _opened(trace: str) -> list[str]:
    """Paths the traced processes opened (successfully)."""
    out = []
    for line in trace.splitlines():
        if "openat(" in line and '"' in line and " = -1 " not in line:
            out.append(line.split('"')[1])
    return out


def _stdlib_modules(paths: list[str]) -> list[str]:
    """Top-level names of the standard (and site-packages) modules among opened paths."""
    roots = {
        os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    names = set()
    for path in paths:
        real = os.path.realpath(path)
        for root in roots:
            if real.startswith(root + "/"):
                rest = [
                    p for p in real[len(root) + 1 :].split("/") if p not in ("lib-dynload", "__pycache__")
                ]
                if rest and rest[0] != "site-packages":
                    names.add(rest[0].split(".")[0])
    return sorted(names)


@pytest.mark.parametrize("which", ["venv", "nvidia-cdi-hook", "nvidia-ctk"])
def test_installed_hook_runs_lean(b: Bundle, tmp_path: Path, toolkit: Path, which: str) -> None:
    strace = require_tool("strace")
    log = tmp_path / "trace"
    argv = [
        *_exe(which, toolkit),
        *_steps(["create-symlinks", "--link", "t::/x"], ["update-application-profile"]),
    ]
    p = subprocess.run(
        [strace, "-f", "-qq", "-s", "4096", "-e", "trace=execve,openat", "-o", str(log), *argv],
        input=b.state,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/x")) == "t"  # the hook really ran
    trace = log.read_text()
    pythons = [ln for ln in trace.splitlines() if "execve(" in ln and '"-c"' in ln and "= 0" in ln]
    assert len(pythons) == 1, trace
    assert '"-I", "-S", "-c"' in pythons[0]
    assert "from gpuctk.hooks.main import entry;entry()" in pythons[0]  # out by os._exit: no teardown
    opened = _opened(trace)
    pkg = os.path.dirname(os.path.realpath(gpuctk.__file__))
    # the parse sees imports: the hook's modules, or their preload bundle (gpuctk._preload)
    assert any(
        os.path.realpath(p).startswith((pkg + "/hooks/", pkg + "/__pycache__/_preload-hook.")) for p in opened
    )
    modules = _stdlib_modules(opened)
    assert "encodings" in modules  # (every start imports it from the stdlib dir; os is frozen)
    assert [m for m in modules if m in BANNED] == []
    assert ".pth" not in trace.replace("_editable_impl_gpuctk.pth", "")  # (the front end reads that one)
    if sys.prefix != sys.base_prefix:
        assert "site-packages/_distutils_hack" not in trace


def _plant(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A hostile environment: every Python variable and a PATH pointing at planted code that
    leaves a mark when it runs, and a cwd holding a planted ``gpuctk`` package."""
    plant = tmp_path / "plant"
    mark = tmp_path / PLANT_MARK
    code = f"open({str(mark)!r}, 'a').write(__name__ + '\\n')\n"
    for rel in (
        "gpuctk/__init__.py",
        "gpuctk/hooks/__init__.py",
        "gpuctk/hooks/main.py",
        "sitecustomize.py",
        "usercustomize.py",
        "startup.py",
        "re.py",
        f"user/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/usercustomize.py",
    ):
        f = plant / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(code)
    (plant / "bin").mkdir()
    for tool in ("readlink", "python", "python3"):
        f = plant / "bin" / tool
        f.write_text(f"#!/bin/sh\necho {tool} >> {mark}\nexit 1\n")
        f.chmod(0o755)
    env = {
        "PATH": f"{plant / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(plant),
        "PYTHONHOME": str(plant / "nohome"),  # honoured, it breaks the interpreter's start
        "PYTHONSTARTUP": str(plant / "startup.py"),
        "PYTHONINSPECT": "1",
        "PYTHONUSERBASE": str(plant / "user"),
        "PYTHONSAFEPATH": "",
        "PYTHONEXECUTABLE": str(plant / "bin" / "python"),
        "PYTHONWARNINGS": "error",
        "PYTHONPLATLIBDIR": "plant",
        "ENV": str(plant / "startup.py"),
        "BASH_ENV": str(plant / "startup.py"),
    }
    return env, mark


@pytest.mark.parametrize("which", ["venv", "nvidia-cdi-hook", "nvidia-ctk"])
def test_installed_hook_ignores_a_hostile_environment(
    b: Bundle, tmp_path: Path, toolkit: Path, which: str
) -> None:
    env, mark = _plant(tmp_path)
    argv = [*_exe(which, toolkit), *_steps(["create-symlinks", "--link", "t::/x"])]
    p = subprocess.run(
        argv, input=b.state, capture_output=True, text=True, env=env, cwd=tmp_path / "plant", timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/x")) == "t"
    assert not mark.exists(), mark.read_text()
    assert p.stdout == ""  # no interactive prompt (PYTHONINSPECT)


@pytest.mark.parametrize("which", ["venv", "nvidia-container-runtime-hook"])
def test_installed_runtime_hook_is_the_legacy_hook(tmp_path: Path, toolkit: Path, which: str) -> None:
    """The same front end under the legacy name runs gpuctk.hooks.legacy (it picks the entry
    from the name of the real file, also through a launcher link)."""
    if which == "venv":
        exe = venv_script("gpuctk-runtime-hook")
    else:
        exe = str(toolkit / which)
        assert os.path.realpath(exe) == os.path.realpath(venv_script("gpuctk-runtime-hook"))
    env, mark = _plant(tmp_path)
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("gpuctk-runtime-hook "), p.stdout
    assert not mark.exists()
    p = subprocess.run([venv_script("gpuctk-hook"), "--version"], capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("gpuctk-hook "), p.stdout


@pytest.mark.parametrize(
    ("argv", "rc", "out", "err"),
    [
        (["--version"], 0, "gpuctk-hook ", ""),
        (["--timeout"], 2, "", "gpuctk-hook: error: flag needs an argument: --timeout"),
        (["--resolver", "x"], 2, "", "gpuctk-hook: error: --resolver 'x'"),
        (["no-such-hook"], 0, "", "gpuctk-hook: warning: unsupported hook 'no-such-hook'"),
    ],
)
def test_entry_flushes_and_keeps_the_exit_code(argv: list[str], rc: int, out: str, err: str) -> None:
    """``entry`` leaves by ``os._exit``: what main printed into the (pipe-buffered) streams is
    still written, and main's exit code is the process's."""
    code = "import sys; from gpuctk.hooks.main import entry; sys.argv[0] = 'gpuctk-hook'; entry()"
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert p.returncode == rc, p.stderr
    assert p.stdout.startswith(out) and (out or p.stdout == "")
    assert p.stderr.startswith(err) and (err or p.stderr == "")


def test_installed_hooks_are_the_front_end() -> None:
    """pyproject.toml installs the sh front end under both names (not pip console scripts),
    and the installed copies are the source's (a stale venv would hide an edit)."""
    for name in ("gpuctk-hook", "gpuctk-runtime-hook"):
        assert Path(venv_script(name)).read_bytes() == SOURCE.read_bytes(), f"{name}: reinstall (make venv)"


def test_admin_cli_hook_still_runs(b: Bundle) -> None:
    """``gpuctk hook NAME`` (the admin CLI) is not the front end and keeps working."""
    p = subprocess.run(
        [venv_script("gpuctk"), "hook", "create-symlinks", "--link", "t::/y"],
        input=b.state,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/y")) == "t"
