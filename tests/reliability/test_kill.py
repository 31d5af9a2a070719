"""SIGKILL every writing command at every file-system step, and at random moments.

For each command the test forks a child that runs ``gpuctk.cli.main.main(argv)`` and SIGKILLs
itself just before its k-th file-system call (``os.open``, ``os.fsync``, ``os.replace``,
``os.unlink``, ``os.symlink``, ``os.mkdir``), for k = 1, 2, ... until the command gets through
without being killed; so every point between two steps, the write windows included (a temp
file written, not yet renamed; a backup made, the config not yet replaced), is hit once. A few
more children are killed from outside after a random delay. After each kill:

- every file the command edits holds exactly its old or its new bytes (or is absent where it
  was absent before), and every backup holds the complete old bytes;
- containerd's ``imports`` never points at a missing drop-in;
- the next run of the same command exits 0 and leaves exactly what an uninterrupted run
  leaves: no temp file, no lock file, no journal.

Forking (not a new interpreter per kill) keeps this at a few seconds per command.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpuctk.cli.main import main

Tree = dict[str, object]
OPS = ("open", "fsync", "replace", "unlink", "symlink", "mkdir", "rename")


def snapshot(root: Path) -> Tree:
    """relative path -> bytes, ``link:TARGET`` or ``dir``; backup time stamps inside files (the
    install manifest names its backups) replaced by ``X``."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                data = re.sub(rb"gpuctk-backup-[0-9T.Z]+", b"gpuctk-backup-X", p.read_bytes())
                if name == ".gpuctk-install.json":  # which directories a run created depends on the kill
                    manifest = json.loads(data)
                    manifest.pop("dirs", None)
                    manifest.pop("started", None)
                    data = json.dumps(manifest, sort_keys=True).encode()
                out[rel] = data
    return out


def restore(root: Path, tree: Tree) -> None:
    import shutil

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for rel, value in sorted(tree.items()):
        p = root / rel
        if value == "dir":
            p.mkdir(parents=True, exist_ok=True)
        elif isinstance(value, str):
            p.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(value.removeprefix("link:"), p)
        else:
            assert isinstance(value, bytes)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(value)


def run_child(argv: list[str], kill_at: int | None = None, kill_after: float | None = None) -> int | None:
    """Run ``main(argv)`` in a forked child; None when it was killed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            devnull = open(os.devnull, "w")  # noqa: SIM115
            sys.stdout = sys.stderr = devnull
            if kill_at is not None:
                count = [0]
                real_open = os.open

                def wrap(fn: Callable[..., object]) -> Callable[..., object]:
                    def counted(*a: object, **k: object) -> object:
                        # a step is a call that changes something: an os.open for reading is not
                        writes = fn is not real_open or int(a[1]) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)  # type: ignore[call-overload]
                        if writes:
                            count[0] += 1
                            if count[0] == kill_at:
                                os.kill(os.getpid(), signal.SIGKILL)
                        return fn(*a, **k)

                    return counted

                for name in OPS:
                    setattr(os, name, wrap(getattr(os, name)))
            code = main(argv)
        finally:
            os._exit(code)
    if kill_after is not None:
        time.sleep(kill_after)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None
    return os.WEXITSTATUS(status)


def is_backup(rel: str) -> bool:
    return ".gpuctk-backup-" in rel


def target_of_backup(rel: str) -> str:
    return rel.split(".gpuctk-backup-", 1)[0]


def is_scratch(rel: str) -> bool:
    """A temp file, lock file or journal: allowed after a kill, never after a completed run."""
    name = os.path.basename(rel)
    return name.endswith((".tmp", ".gpuctk-lock", ".gpuctk-journal", ".gpuctk-tmp"))


def without_backups(tree: Tree) -> Tree:
    return {k: v for k, v in tree.items() if not is_backup(k)}


def check_killed_state(
    name: str, before: Tree, after: Tree, now: Tree, extra: Callable[[Tree], None]
) -> None:
    for rel, value in now.items():
        if is_scratch(rel):
            continue
        if is_backup(rel):
            if rel in before:
                assert value == before[rel], f"{name}: old backup {rel} changed"
            else:
                assert value == before.get(target_of_backup(rel)), f"{name}: backup {rel} incomplete"
            continue
        if value == "dir":
            continue
        assert value in (before.get(rel), after.get(rel)), f"{name}: {rel} is neither old nor new: {value!r}"
    for rel, value in before.items():
        if value != "dir" and not is_backup(rel) and rel not in now:
            assert after.get(rel) is None, f"{name}: {rel} vanished"
    extra(now)


def check_clean(name: str, before: Tree, after: Tree, now: Tree) -> None:
    scratch = [rel for rel in now if is_scratch(rel)]
    assert not scratch, f"{name}: left behind {scratch}"
    assert without_backups(now) == without_backups(after), f"{name}: the next run did not finish the edit"
    for rel, value in now.items():
        if is_backup(rel) and rel not in before:
            assert value == before.get(target_of_backup(rel)), f"{name}: backup {rel} is not the old file"


def no_check(now: Tree) -> None:
    return None


def exercise(
    tmp_path: Path,
    name: str,
    before: Tree,
    argv_of: Callable[[Path], list[str]],
    extra: Callable[[Tree], None] = no_check,
    random_kills: int = 4,
    stride: int = 1,
) -> int:
    """Kill ``argv`` at each step and a few random moments; returns how many kills were checked."""
    d = tmp_path / "node"
    argv = argv_of(d)
    restore(d, before)
    assert run_child(argv) == 0, name
    after = snapshot(d)
    assert without_backups(after) != without_backups(before), f"{name}: the command changed nothing"
    start = time.monotonic()
    restore(d, before)
    assert run_child(argv) == 0
    duration = time.monotonic() - start
    kills = 0
    rng = random.Random(name)
    points: list[tuple[int | None, float | None]] = [
        (None, rng.uniform(0, duration)) for _ in range(random_kills)
    ]
    k = 0
    while True:  # every step, then the random moments
        if k is not None:
            k += 1 if k == 0 else stride
            if k > 1500:
                pytest.fail(f"{name}: more than 1500 file-system steps")
            kill_at, kill_after = k, None
        elif points:
            kill_at, kill_after = points.pop()
        else:
            break
        restore(d, before)
        rc = run_child(argv, kill_at=kill_at, kill_after=kill_after)
        where = f"{name} (killed at {f'step {kill_at}' if kill_at else f'{kill_after:.3f} s'})"
        if rc is not None:  # finished before the kill: fewer steps than kill_at, or too fast
            assert rc == 0, f"{where}: exit {rc}"
            check_clean(where, before, after, snapshot(d))
            k = None  # type: ignore[assignment]
            continue
        kills += 1
        check_killed_state(where, before, after, snapshot(d), extra)
        assert run_child(argv) == 0, f"{where}: the next run failed"
        check_clean(f"{where}, then run again", before, after, snapshot(d))
    return kills


# ------------------------------------------------------------------ runtime configure
CTD_CONFIG = b'version = 2\n\n# keep this comment\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause:3.9"\n'
CRIO_CONF = b'# crio.conf\n[crio]\n\n[crio.runtime]\n# default_runtime = "runc"\n\n[crio.image]\n# pause_image = "x"\n'
DAEMON_JSON = b'{\n  "log-level": "info"\n}\n'


def configure(engine: str, config: str, drop_in: str, *extra: str) -> Callable[[Path], list[str]]:
    def argv(d: Path) -> list[str]:
        out = ["runtime", "configure", "--runtime", engine, "--config", str(d / config)]
        out += ["--drop-in-config", str(d / drop_in) if drop_in else ""]
        if engine == "containerd":
            out += ["--engine-version", "1.7.0"]
        return out + list(extra)

    return argv


def imports_never_dangle(now: Tree) -> None:
    cfg = now.get("config.toml")
    if isinstance(cfg, bytes) and b"imports" in cfg:
        assert isinstance(now.get("conf.d/99-nvidia.toml"), bytes), "imports points at a missing drop-in"


CONFIGURE_CASES = [
    (
        "containerd-drop-in",
        {"config.toml": CTD_CONFIG},
        configure("containerd", "config.toml", "conf.d/99-nvidia.toml", "--set-as-default"),
    ),
    (
        "containerd-in-place",
        {"config.toml": CTD_CONFIG},
        configure("containerd", "config.toml", "", "--enable-cdi"),
    ),
    ("crio-in-place", {"crio.conf": CRIO_CONF}, configure("crio", "crio.conf", "", "--set-as-default")),
    ("crio-drop-in", {"crio.conf": CRIO_CONF}, configure("crio", "crio.conf", "crio.conf.d/99-nvidia.toml")),
    ("docker", {"daemon.json": DAEMON_JSON}, configure("docker", "daemon.json", "", "--set-as-default")),
]


@pytest.mark.parametrize(("name", "before", "argv_of"), CONFIGURE_CASES, ids=[c[0] for c in CONFIGURE_CASES])
def test_configure_and_uninstall_survive_sigkill(
    tmp_path: Path, name: str, before: dict[str, bytes], argv_of: Callable[[Path], list[str]]
) -> None:
    extra = imports_never_dangle if name == "containerd-drop-in" else no_check
    tree: Tree = dict(before)
    assert exercise(tmp_path, name, tree, argv_of, extra) > 3
    # uninstall from the configured state, killed the same way
    d = tmp_path / "node"
    restore(d, tree)
    assert run_child(argv_of(d)) == 0
    configured = snapshot(d)
    assert (
        exercise(tmp_path, name + "-uninstall", configured, lambda d: [*argv_of(d), "--uninstall"], extra) > 3
    )
    # and the round trip gives the original bytes back
    restore(d, configured)
    assert run_child([*argv_of(d), "--uninstall"]) == 0
    assert without_backups(snapshot(d)) == {**{k: v for k, v in tree.items()}, **_dirs(snapshot(d))}


def _dirs(tree: Tree) -> Tree:
    return {k: v for k, v in tree.items() if v == "dir"}


# ------------------------------------------------------------------ config --in-place, cdi generate
def test_config_in_place_survives_sigkill(tmp_path: Path) -> None:
    before: Tree = {"config.toml": b'# mine\n[nvidia-container-runtime]\nlog-level = "info"\n'}
    assert (
        exercise(
            tmp_path,
            "config-in-place",
            before,
            lambda d: [
                "config",
                "-c",
                str(d / "config.toml"),
                "--in-place",
                "--set",
                "nvidia-container-runtime.mode=cdi",
            ],
        )
        > 3
    )


def test_cdi_generate_output_survives_sigkill(tmp_path: Path, sim_nodes) -> None:
    root = sim_nodes.get("dgx-h100").root
    before: Tree = {"cdi/nvidia.yaml": b"cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n"}
    assert (
        exercise(
            tmp_path,
            "cdi-generate",
            before,
            lambda d: ["cdi", "generate", "--driver-root", root, "--output", str(d / "cdi" / "nvidia.yaml")],
        )
        > 3
    )


# ------------------------------------------------------------------ install
def test_install_survives_sigkill_and_uninstall_leaves_nothing(tmp_path: Path) -> None:
    """Killed at every step: the re-install completes it; after a kill, uninstall (directly or
    after the re-install) gives the original tree back, the user's config.toml (with its
    comment) and the user's file at the drop-in path included."""
    before: Tree = {
        "bin/gpuctk": b"#!/bin/sh\n",
        "root/etc/nvidia-container-runtime/config.toml": b'# my settings\n[nvidia-container-runtime]\nlog-level = "info"\n',
        "root/etc/containerd/config.toml": CTD_CONFIG,
        "root/etc/containerd/conf.d/99-nvidia.toml": b"# the user's own drop-in\nversion = 2\n",
    }

    def argv(d: Path) -> list[str]:
        return [
            "install",
            "--toolkit-dir",
            str(d / "root/usr/local/nvidia/toolkit"),
            "--root",
            str(d / "root"),
            "--bin-dir",
            str(d / "bin"),
            "--runtime",
            "containerd",
            "--engine-version",
            "1.7.0",
            "--no-cdi-spec",
        ]

    # every second step: install has about a hundred (a dozen launchers)
    assert exercise(tmp_path, "install", before, argv, imports_never_dangle_rooted, stride=2) > 10
    d = tmp_path / "node"
    original = None
    for k in (5, 15, 30, 45, 60):  # killed install, then uninstall directly
        restore(d, before)
        original = snapshot(d)
        if run_child(argv(d), kill_at=k) is not None:
            continue
        assert run_child([*argv(d), "--uninstall"]) == 0
        # empty directories above the toolkit dir made before the manifest may stay (docs/reliability.md)
        assert files_only(snapshot(d)) == files_only(original), f"uninstall after a kill at {k} left files"
    restore(d, before)
    original = snapshot(d)
    assert run_child(argv(d), kill_at=20) is None
    assert run_child(argv(d)) == 0
    assert run_child([*argv(d), "--uninstall"]) == 0
    assert files_only(snapshot(d)) == files_only(original)
    # uninterrupted: not even a directory is left
    restore(d, before)
    assert run_child(argv(d)) == 0
    assert run_child([*argv(d), "--uninstall"]) == 0
    assert snapshot(d) == original


def files_only(tree: Tree) -> Tree:
    return {k: v for k, v in tree.items() if v != "dir"}


def imports_never_dangle_rooted(now: Tree) -> None:
    cfg = now.get("root/etc/containerd/config.toml")
    if isinstance(cfg, bytes) and b"conf.d" in cfg:
        assert isinstance(now.get("root/etc/containerd/conf.d/99-nvidia.toml"), bytes)
