"""The sh front end (gpuctk/runtime/scripts/gpuctk-runtime) against the Python side.

The script is run for real, in a temp bin dir whose ``python`` is a stand-in that prints ``PY``;
the low-level runtime recorded in the cache is a stand-in that prints ``RT`` and saves its
argv. So every case shows which way the script went, and the table compares that with the
Python parser (``frontend.needs_python``, built on gpuctk.oci.args) on the same argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuctk.runtime
from gpuctk.config.load import default_config_typed
from gpuctk.config.types import RuntimeConfig
from gpuctk.oci.args import has_create, has_version_flag, logging_flags, modifies_spec, subcommand
from gpuctk.runtime import frontend
from support.tools import require_root, require_tool

SCRIPT = Path(gpuctk.runtime.__file__).parent / "scripts" / "gpuctk-runtime"

FAKE_RUNTIME = """#!/bin/sh
printf '%s\\0' "$0" "$@" > "$0.argv"
env > "$0.env"
echo RT
"""


def _rt_cfg(level: str) -> RuntimeConfig:
    """The shim's [nvidia-container-runtime] table with log-level set."""
    rt = default_config_typed()["nvidia-container-runtime"]
    rt["log-level"] = level
    return rt


def age(path: Path, seconds: int = 60) -> None:
    """A config edited just now is not cached (frontend._RACY_NS); a node's config is older."""
    t = time.time_ns() - seconds * 10**9
    os.utime(path, ns=(t, t))


class FrontEnd:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.bin = tmp / "venv" / "bin"
        self.bin.mkdir(parents=True)
        self.script = self.bin / "gpuctk-runtime"
        shutil.copy(SCRIPT, self.script)
        py = self.bin / "python"
        py.write_text("#!/bin/sh\necho PY\n")
        py.chmod(0o755)
        self.runtime = tmp / "lowlevel" / "runc"
        self.runtime.parent.mkdir()
        self.runtime.write_text(FAKE_RUNTIME)
        self.runtime.chmod(0o755)
        self.cache = tmp / "cache"
        self.cache.mkdir(mode=0o700)
        self.cfg = tmp / "config.toml"
        self.cfg.write_text("# empty\n")
        age(self.cfg)
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "NVIDIA_CTK_CONFIG_FILE_PATH": str(self.cfg),
            "GPUCTK_CONFIG_CACHE_DIR": str(self.cache),
        }
        for k in ("XDG_CONFIG_HOME",):
            monkeypatch.delenv(k, raising=False)
        for k, v in self.env.items():
            monkeypatch.setenv(k, v)

    def record(self, level: str = "info") -> None:
        frontend.record(frontend.config_state(), str(self.runtime), _rt_cfg(level))

    @property
    def cache_file(self) -> Path:
        return self.cache / frontend.CACHE_NAME

    def run(
        self, *args: str | bytes, env: dict[str, str] | None = None, shell: list[str] | None = None
    ) -> str:
        r = subprocess.run(
            [*(shell or []), str(self.script), *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout in ("PY\n", "RT\n"), r.stdout + r.stderr
        return r.stdout.strip()


@pytest.fixture
def fe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FrontEnd:
    f = FrontEnd(tmp_path, monkeypatch)
    f.record()
    return f


# every argv form tests/runtime/test_args.py knows, and runc's global flags with values
ARGV_TABLE: list[list[str]] = [
    [],
    ["create"],
    ["--bundle"],
    ["-b"],
    ["--bundle", "/foo/bar"],
    ["--not-bundle", "/foo/bar"],
    ["--"],
    ["-"],
    ["-bundle", "/foo/bar"],
    ["--bundle=/foo/bar"],
    ["-b=/foo/bar"],
    ["-b=/foo/=bar"],
    ["-b", "/foo/bar"],
    ["create", "-b", "/foo/bar"],
    ["-b", "create", "create"],
    ["-b=create", "create"],
    ["-b", "create"],
    ["--bundle", "create"],
    ["--bundle=create"],
    ["---bundle", "/x"],
    ["-b", "/a", "--bundle=/b"],
    ["--root", "/run/runc", "--log", "/l", "create", "--bundle", "/b", "id"],
    ["start", "id"],
    ["delete", "--force", "create"],
    ["--version"],
    ["-version"],
    ["-v"],
    ["--version=1"],
    ["version"],
    ["state", "--version"],
    ["--log", "/l.json", "--log-format", "json", "state", "id"],
    ["--log=/l", "--log-format=text", "--debug", "state"],
    ["--root", "/r", "--debug", "--systemd-cgroup", "--log", "/x", "state", "id"],
    ["--debug=false", "state", "id"],
    ["--debug=TRUE", "state", "id"],
    ["--debug=1", "--debug=0", "state", "id"],
    ["--debug", "--debug=no", "kill", "id", "9"],
    ["state", "--debug", "id"],
    ["create", "--log", "/not-global"],
    ["--root", "/r", "run", "--bundle", "/b", "id"],
    ["--log", "/l", "--debug", "create", "id"],
    ["exec", "id", "make", "run"],
    ["--root", "run", "state", "id"],
    ["--log", "run", "state", "id"],
    ["--log=run", "run", "id"],
    ["--criu", "/c", "--rootless", "true", "checkpoint", "id"],
    ["--rootless=auto", "run", "id"],
    ["--", "run"],
    ["--systemd-cgroup", "run", "id"],
    ["--root", "/r", "--log-format", "json", "delete", "--force", "id"],
    ["--root", "/r", "kill", "id", "SIGKILL"],
    ["--root", "/r", "--log", "/l", "--log-format", "json", "start", "id"],
    ["features"],
    ["--help"],
    ["-b", "-b", "create"],
    ["--bundle", "--bundle", "create"],
    ["---", "create"],
    ["--=x", "state"],
    ["state", "run"],
    ["state", "create"],
]


def _shell(name: str) -> list[str] | None:
    """None: the kernel runs the script with its #!/bin/sh (dash on Debian)."""
    if name == "/bin/sh":
        return None
    if name == "busybox":
        return [require_tool("busybox"), "sh"]
    return [require_tool(name)]


@pytest.mark.parametrize("shell", ["/bin/sh", "bash", "busybox"])
@pytest.mark.parametrize("argv", ARGV_TABLE, ids=[" ".join(a) or "<empty>" for a in ARGV_TABLE])
def test_script_routes_like_the_python_parser(fe: FrontEnd, argv: list[str], shell: str) -> None:
    want = "PY" if frontend.needs_python(argv) else "RT"
    assert fe.run(*argv, shell=_shell(shell)) == want
    if want == "RT":  # and then the runtime got the arguments untouched, argv[0] its path
        assert fe.runtime.with_suffix(".argv").read_bytes() == b"".join(
            a.encode() + b"\0" for a in [str(fe.runtime), *argv]
        )


def test_needs_python_is_the_shims_own_rules() -> None:
    """The table's oracle is built from the shim's parser, case by case."""
    for argv in ARGV_TABLE:
        expected = modifies_spec(argv) or has_version_flag(argv) or logging_flags(argv)[2]
        assert frontend.needs_python(argv) is expected
    assert frontend.needs_python(["--bundle", "create"]) is False  # a bundle named create
    assert frontend.needs_python(["-b", "create", "create"]) is True
    assert has_create(["state", "create"]) and subcommand(["state", "create"]) == "state"


TOKENS = [
    "create",
    "run",
    "state",
    "-b",
    "--bundle",
    "--bundle=x",
    "-b=create",
    "x",
    "--",
    "-",
    "--log",
    "--log=/l",
    "--root",
    "--debug",
    "--debug=f",
    "--version",
    "-rootless",
    "--systemd-cgroup",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS), max_size=6))
def test_random_argv_agree(fe: FrontEnd, argv: list[str]) -> None:
    assert fe.run(*argv) == ("PY" if frontend.needs_python(argv) else "RT")


def test_pass_through_is_byte_exact(fe: FrontEnd) -> None:
    odd = ["state", "", "a b", "new\nline", "*", "$HOME", "'q'", "--x=\\"]
    assert fe.run(*odd) == "RT"
    assert fe.runtime.with_suffix(".argv").read_bytes() == b"".join(
        a.encode() + b"\0" for a in [str(fe.runtime), *odd]
    )
    r = subprocess.run([os.fsencode(fe.script), b"state", b"\xff\xfe"], env=fe.env, capture_output=True)
    assert r.stdout == b"RT\n"
    assert fe.runtime.with_suffix(".argv").read_bytes().split(b"\0")[1:3] == [b"state", b"\xff\xfe"]


def test_environment_passes_through(fe: FrontEnd) -> None:
    env = {**fe.env, "A_VAR": "x y", "B": "with\nnewline", "LD_X": "*"}
    assert fe.run("state", "id", env=env) == "RT"
    got = dict(
        line.split("=", 1)
        for line in fe.runtime.with_suffix(".env").read_text().replace("\nnewline", "\\n").splitlines()
    )
    got.pop("PWD", None)  # dash exports PWD (docs/runtime.md)
    assert got == {**env, "B": "with\\n"}


def test_cache_text_and_stamp(fe: FrontEnd) -> None:
    lines = fe.cache_file.read_text().splitlines()
    assert lines == [frontend.HEADER, str(fe.cfg), "present", fe.env["PATH"], str(fe.runtime), "end"]
    assert os.stat(fe.cache_file).st_mtime_ns == os.stat(fe.cfg).st_mtime_ns
    assert (os.stat(fe.cache_file).st_mode & 0o777) == 0o600


def test_stale_when_config_changes(fe: FrontEnd) -> None:
    assert fe.run("state", "id") == "RT"
    st = os.stat(fe.cfg)
    os.utime(fe.cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # even 1 ns later
    assert fe.run("state", "id") == "PY"
    fe.record()  # the next Python run refreshes it
    assert fe.run("state", "id") == "RT"
    os.utime(fe.cfg, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # older (restored backup)
    assert fe.run("state", "id") == "PY"


def test_stale_when_config_appears_or_goes(fe: FrontEnd) -> None:
    fe.cfg.unlink()
    assert fe.run("state", "id") == "PY"
    fe.record()
    assert fe.cache_file.read_text().splitlines()[2] == "absent"
    assert fe.run("state", "id") == "RT"
    fe.cfg.write_text("")
    assert fe.run("state", "id") == "PY"


def test_other_config_path_or_path_env_misses(fe: FrontEnd) -> None:
    assert fe.run("state", "id", env={**fe.env, "PATH": "/bin"}) == "PY"
    other = fe.tmp / "other.toml"
    shutil.copy2(fe.cfg, other)
    assert fe.run("state", "id", env={**fe.env, "NVIDIA_CTK_CONFIG_FILE_PATH": str(other)}) == "PY"
    assert fe.run("state", "id", env={**fe.env, "GPUCTK_CONFIG_CACHE_DIR": ""}) == "PY"  # caching off


def test_default_config_path_spelling(fe: FrontEnd, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = fe.tmp / "xdg"
    (xdg / "nvidia-container-runtime").mkdir(parents=True)
    (xdg / "nvidia-container-runtime" / "config.toml").write_text("")
    age(xdg / "nvidia-container-runtime" / "config.toml")
    monkeypatch.delenv("NVIDIA_CTK_CONFIG_FILE_PATH")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    fe.record()
    env = {k: v for k, v in fe.env.items() if k != "NVIDIA_CTK_CONFIG_FILE_PATH"}
    assert fe.run("state", "id", env={**env, "XDG_CONFIG_HOME": str(xdg)}) == "RT"
    assert fe.run("state", "id", env={**env, "XDG_CONFIG_HOME": str(fe.tmp)}) == "PY"


def test_runtime_gone_or_not_executable(fe: FrontEnd) -> None:
    fe.runtime.chmod(0o644)
    assert fe.run("state", "id") == "PY"
    fe.runtime.unlink()
    assert fe.run("state", "id") == "PY"


def test_untrusted_cache_is_not_read(fe: FrontEnd) -> None:
    require_root()
    real = fe.cache_file.read_bytes()
    os.chown(fe.cache_file, 65534, 65534)  # not ours
    assert fe.run("state", "id") == "PY"
    fe.cache_file.unlink()
    planted = fe.tmp / "planted"
    planted.write_bytes(real)
    fe.cache_file.symlink_to(planted)  # a symlink, even to a good file
    assert fe.run("state", "id") == "PY"
    fe.cache_file.unlink()
    fe.record()
    assert fe.run("state", "id") == "RT"
    os.chown(fe.cache, 65534, 65534)  # a directory that is not ours
    assert fe.run("state", "id") == "PY"


def test_truncated_or_foreign_cache_is_not_read(fe: FrontEnd) -> None:
    text = fe.cache_file.read_text()
    st = os.stat(fe.cache_file)
    for bad in (text.replace("\nend\n", "\n"), text.replace(frontend.HEADER, "gpuctk-frontend-cache 0"), ""):
        fe.cache_file.write_text(bad)
        os.utime(fe.cache_file, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert fe.run("state", "id") == "PY"


def test_writer_refuses_untrusted_dir_and_debug_logging(fe: FrontEnd) -> None:
    fe.record(level="debug")  # pass-through would log debug lines: the script must not skip them
    assert not fe.cache_file.exists()
    assert fe.run("state", "id") == "PY"
    fe.cache.chmod(0o777)
    fe.record()
    assert not fe.cache_file.exists()


def test_writer_refuses_values_that_are_not_one_line() -> None:
    assert frontend.render("/c", True, "/bin", "/x/runc") is not None
    assert frontend.render("/c\nx", True, "/bin", "/x/runc") is None
    assert frontend.render("/c", True, "/bin\n", "/x/runc") is None
    assert frontend.render("/c", True, "/bin", "runc") is None  # never a relative path


def test_script_never_execs_itself(fe: FrontEnd) -> None:
    frontend.record(frontend.config_state(), str(fe.script), _rt_cfg("info"))
    assert fe.run("state", "id") == "PY"


@pytest.mark.parametrize("name", ["gpuctk-runtime", "gpuctk-runtime-cdi", "gpuctk-runtime-legacy"])
def test_installed_scripts_are_the_front_end(name: str) -> None:
    """pip (hatchling shared-scripts) installs the script byte for byte under all three names; an
    editable install copies it, so an edit needs a reinstall (the Makefile's venv rule has it)."""
    from support.tools import venv_script

    installed = Path(venv_script(name))
    assert installed.read_bytes() == SCRIPT.read_bytes(), f"{installed} is stale: pip install -e ."
    assert os.access(installed, os.X_OK)


def test_recently_changed_config_is_not_cached(fe: FrontEnd) -> None:
    fe.cache_file.unlink()
    fe.cfg.write_text("# just now\n")
    fe.record()
    assert not fe.cache_file.exists()
    assert fe.run("state", "id") == "PY"
    age(fe.cfg, 3)
    fe.record()
    assert fe.run("state", "id") == "RT"


def test_whole_second_shells_see_any_later_edit(fe: FrontEnd) -> None:
    """busybox ash compares mtimes in whole seconds; an edit after the cache was written (at
    least 2 s after the recorded mtime) is in a later second."""
    sh = _shell("busybox")
    assert fe.run("state", "id", shell=sh) == "RT"
    st = os.stat(fe.cfg)
    os.utime(fe.cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert fe.run("state", "id", shell=sh) == "PY"
