"""Two writers at once never lose an edit; a held lock makes a second run wait, then fail with one line."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

import pytest

from gpuctk.cli.main import main
from gpuctk.engines import apply
from gpuctk.engines.model import ConfigureOptions
from gpuctk.errors import GpuctkError
from gpuctk.filelock import FileLock, lock_path

LAYOUTS = {
    # name: (engine, config file, its content, drop-in or "")
    "containerd-drop-in": ("containerd", "config.toml", "version = 2\n", "conf.d/99-nvidia.toml"),
    "containerd-in-place": ("containerd", "config.toml", "version = 2\n", ""),
    "crio-in-place": ("crio", "crio.conf", "[crio.runtime]\n", ""),
    "crio-drop-in": ("crio", "crio.conf", "[crio.runtime]\n", "crio.conf.d/99-nvidia.toml"),
    "docker": ("docker", "daemon.json", "{}\n", ""),
}


def _runtimes(layout: str, d: Path) -> set[str]:
    engine, config, _, drop_in = LAYOUTS[layout]
    path = d / (drop_in or config)
    if engine == "docker":
        return set(json.loads(path.read_text()).get("runtimes", {}))
    data = tomllib.loads(path.read_text())
    if engine == "crio":
        return set(data["crio"]["runtime"]["runtimes"])
    return set(data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"])


def _expected(layout: str, *names: str) -> set[str]:
    """The runtimes both runs leave: before containerd 2.0 a drop-in replaces the CRI table it
    imports, so it carries containerd's own ``runc`` too (engines/containerd.py)."""
    return set(names) | ({"runc"} if layout == "containerd-drop-in" else set())


def _options(layout: str, d: Path, name: str) -> ConfigureOptions:
    engine, config, _, drop_in = LAYOUTS[layout]
    return ConfigureOptions(
        engine=engine,
        config=str(d / config),
        drop_in=str(d / drop_in) if drop_in else "",
        runtime_name=name,
        engine_version=(1, 7, 0) if engine == "containerd" else None,
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_plan_made_before_another_run_wrote_keeps_that_runs_edit(tmp_path: Path, layout: str) -> None:
    """The lost-edit race, made deterministic: both runs read the old file, one writes, then the
    other applies its (now stale) plan. Under the lock apply sees the file changed and plans again."""
    _, config, text, _ = LAYOUTS[layout]
    (tmp_path / config).write_text(text)
    first = apply.plan(_options(layout, tmp_path, "first"))
    second = apply.plan(_options(layout, tmp_path, "second"))
    apply.apply(first)
    apply.apply(second)
    assert _runtimes(layout, tmp_path) == _expected(layout, "first", "second")
    assert not [
        p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".gpuctk-lock", ".gpuctk-journal"))
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_configure_runs_at_once_never_lose_an_edit(tmp_path: Path, layout: str) -> None:
    """Pairs of forked `runtime configure` runs released together: both runtimes always land."""
    engine, config, text, drop_in = LAYOUTS[layout]
    for pair in range(6):
        d = tmp_path / f"pair{pair}"
        d.mkdir()
        (d / config).write_text(text)
        r, w = os.pipe()
        pids = []
        for name in ("a", "b"):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 99
                try:
                    os.close(w)
                    os.read(r, 1)  # wait for the start signal: both begin together
                    devnull = open(os.devnull, "w")  # noqa: SIM115
                    os.dup2(devnull.fileno(), 1)
                    argv = ["runtime", "configure", "--runtime", engine, "--config", str(d / config)]
                    argv += ["--drop-in-config", str(d / drop_in) if drop_in else "", "--runtime-name", name]
                    if engine == "containerd":
                        argv += ["--engine-version", "1.7.0"]
                    code = main(argv)
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(r)
        os.close(w)  # EOF releases both children at once
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        assert codes == [0, 0]
        assert _runtimes(layout, d) == _expected(layout, "a", "b"), f"pair {pair}: an edit was lost"


def test_a_held_lock_makes_the_second_run_fail_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text("{}\n")
    plan = apply.plan(_options("docker", tmp_path, "nvidia"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child holds the lock until killed
        with FileLock(str(cfg)):
            while True:
                time.sleep(3600)
    try:
        lock = Path(lock_path(str(cfg)))
        for _ in range(3000):  # wait until the child holds it
            if lock.exists() and lock.read_text().strip() == str(pid):
                break
            time.sleep(0.01)
        import gpuctk.filelock as filelock

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(filelock, "LOCK_TIMEOUT", 0.2)
            with pytest.raises(GpuctkError) as exc:
                apply.apply(plan)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    message = str(exc.value)
    assert message.startswith(f"{cfg}: locked by another gpuctk run (pid {pid})") and "\n" not in message
    assert cfg.read_text() == "{}\n"  # nothing written
    # the holder died: the next run takes the lock and removes the lock file when done
    apply.apply(apply.plan(_options("docker", tmp_path, "nvidia")))
    assert "nvidia" in json.loads(cfg.read_text())["runtimes"]
    assert sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith("daemon.json.gpuctk-backup")
    ) == ["daemon.json"]
