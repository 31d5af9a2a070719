"""``gpuctk-hook run-steps``: several hooks in one process (issue 15 item 4), as whole
processes of the installed executable: the argv encoding, same effects as the per-step
hooks, the first failing step stops the rest with one line, bad step lists do nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from gpuctk.hooks.steps import StepsError, decode, encode
from support.hooks import make_decoy, make_hook_bundle, run_hook, snapshot, write
from support.tools import require_root, venv_script


@pytest.fixture
def b(tmp_path):
    return make_hook_bundle(str(tmp_path / "c"))


def _steps(*steps: list[str]) -> list[str]:
    """The documented encoding, built here by hand: each step's word count, then its words."""
    out: list[str] = ["run-steps"]
    for s in steps:
        out += [str(len(s)), *s]
    return out


@pytest.mark.parametrize(
    "steps",
    [
        [["noop"]],
        [["create-symlinks", "--link", "a::/b"], ["chmod", "--mode", "755", "--path", "--"]],
        [["update-ldcache", "--folder", "3"], ["3"], ["run-steps"]],  # words that look like counts/names
    ],
)
def test_encode_decode_roundtrip(steps):
    words = encode(steps)
    assert words == _steps(*steps)[1:]
    assert decode(words) == steps


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["0"],
        ["01", "noop"],
        ["-1", "noop"],
        ["2", "noop"],
        ["x"],
        ["1", "noop", "1"],
        ["+1", "noop"],
        ["١", "noop"],
    ],
)
def test_decode_refuses_malformed_lists(words):
    with pytest.raises(StepsError):
        decode(words)


def test_steps_run_in_order_with_the_effects_of_separate_hooks(tmp_path):
    links = [["create-symlinks", "--link", "t1::/a/l1"], ["create-symlinks", "--link", "t2::/a/l2,t3::/a/l3"]]
    chmod = ["chmod", "--mode", "700", "--path", "/a"]
    one = make_hook_bundle(str(tmp_path / "one"))
    sep = make_hook_bundle(str(tmp_path / "sep"))
    p = run_hook(one, *_steps(*links, chmod))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    for step in [*links, chmod]:
        q = run_hook(sep, *step)
        assert q.returncode == 0, q.stderr
    for bb in (one, sep):
        assert [os.readlink(bb.path(f"/a/l{i}")) for i in (1, 2, 3)] == ["t1", "t2", "t3"]
        assert stat.S_IMODE(os.stat(bb.path("/a")).st_mode) == 0o700


def test_failing_step_fails_the_hook_with_one_line_and_stops_later_steps(b):
    write(b.path("/blocker"), "a regular file where a directory is needed")
    p = run_hook(
        b,
        *_steps(
            ["create-symlinks", "--link", "t::/ok/first"],
            ["create-symlinks", "--link", "t::/blocker/x"],
            ["create-symlinks", "--link", "t::/later/never"],
        ),
    )
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(
        "gpuctk-hook: error: run-steps: step 2 (create-symlinks):"
    ), p.stderr
    assert os.path.islink(b.path("/ok/first"))
    assert not os.path.lexists(b.path("/later"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run-steps", "3", "create-symlinks", "--link"], "overruns"),
        (["run-steps", "x", "noop"], "word count"),
        (
            ["run-steps", "2", "create-symlinks", "--bogus"],
            "step 2: create-symlinks: flag provided but not defined",
        ),
        (["run-steps", "2", "chmod", "--help"], "step 2: chmod: flag provided but not defined: --help"),
        (["run-steps", "3", "chmod", "--mode", "9z"], "octal"),
        (["run-steps", "3", "create-symlinks", "--container-spec", "/x"], "belongs before the steps"),
    ],
)
def test_bad_step_lists_are_usage_errors_and_do_nothing(b, args, needle):
    p = run_hook(b, *_steps(["create-symlinks", "--link", "t::/made"]), *args[1:])
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr
    assert not os.path.lexists(b.path("/made"))  # nothing ran: every step is parsed first


def test_no_steps_is_a_usage_error(b):
    p = run_hook(b, "run-steps")
    assert p.returncode == 2 and "run-steps: no steps given" in p.stderr, p.stderr


def test_unknown_step_is_a_warning_and_the_others_run(b):
    p = run_hook(b, *_steps(["some-future-hook", "--x"], ["create-symlinks", "--link", "t::/made"]))
    assert p.returncode == 0 and "step 1: unsupported hook 'some-future-hook'; skipped" in p.stderr
    assert os.readlink(b.path("/made")) == "t"


def test_container_spec_before_the_steps(b, tmp_path):
    state = tmp_path / "state.json"
    state.write_text(b.state)
    p = subprocess.run(
        [
            venv_script("gpuctk-hook"),
            "run-steps",
            "--container-spec",
            str(state),
            "3",
            "create-symlinks",
            "--link",
            "t::/m",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert os.readlink(b.path("/m")) == "t"


def test_state_is_parsed_once_and_the_deadline_is_the_runs(b, tmp_path):
    """A state on stdin that never ends: ONE deadline for the run, not one per step."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    holder = os.open(fifo, os.O_RDWR)  # a writer that never writes
    try:
        p = subprocess.run(
            [
                venv_script("gpuctk-hook"),
                "--timeout=0.5",
                *_steps(
                    ["noop"], ["create-symlinks", "--link", "t::/a"], ["create-symlinks", "--link", "t::/b"]
                ),
            ],
            stdin=holder,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.close(holder)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "run-steps: deadline of 0.5s exceeded" in p.stderr


# (what the installed gpuctk-hook imports running steps, through its sh front end and the
# launchers: tests/hooks/test_installed_hook_entry.py)


# ------------------------------------------------------------------ hostile roots, combined path
@pytest.mark.integration
def test_hostile_root_blocked_through_run_steps(tmp_path):
    """The attack fixtures of test_attacks_ownership.py, through run-steps: a hard link to a host
    file is not chmod'ed, and a link onto a "volume" (an image symlink leading out) is refused;
    the decoy host tree is unchanged and the failing step stops the later one."""
    require_root()
    host = make_decoy(str(tmp_path))
    b = make_hook_bundle(str(tmp_path / "c"))
    os.makedirs(b.path("/usr/lib/nv"))
    os.link(os.path.join(host, "lib", "libhost.so.1.0"), b.path("/usr/lib/nv/libhost.so"))
    os.symlink(os.path.join(host, "lib"), b.path("/usr/lib/out"))  # absolute host path: resolved in the root
    before = snapshot(host)
    p = run_hook(
        b,
        *_steps(
            ["chmod", "--mode", "4777", "--path", "/usr/lib/nv/libhost.so"],
            ["create-symlinks", "--link", "evil::/usr/lib/out/planted"],
            ["create-symlinks", "--link", "t::/after"],
        ),
    )
    assert "hard links" in p.stderr, p.stderr
    assert snapshot(host) == before
    assert not os.path.lexists(os.path.join(host, "lib", "planted"))
    if (
        p.returncode != 0
    ):  # the link resolved inside the root may be created there; either way the host is untouched
        assert "run-steps: step 2 (create-symlinks)" in p.stderr and not os.path.lexists(b.path("/after"))


def test_run_steps_help_mentions_the_encoding():
    p = subprocess.run([venv_script("gpuctk-hook"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "run-steps" in p.stdout and "N1 HOOK1" in p.stdout


def test_module_is_stdlib_only():
    p = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys, gpuctk.hooks.steps as s; print(sorted(set(sys.modules) & {'re', 'json'}))",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert p.stdout.strip() == "[]", p.stderr
