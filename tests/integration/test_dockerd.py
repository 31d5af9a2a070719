"""Debian's dockerd 20.10, started privately (own data root, exec root, pidfile, unix socket,
no bridge, no iptables, vfs), configured by `gpuctk runtime configure --runtime docker`:

1. without CDI flags: the daemon starts, `docker info` lists the nvidia runtime, a plain
   `docker run` works, and `docker run --runtime nvidia -e NVIDIA_VISIBLE_DEVICES=<two UUIDs>`
   sees exactly those two simulated GPUs (and a run without the variable sees none);
2. with --enable-cdi / --cdi-spec-dir / --set-as-default (Docker 20.10 knows neither
   `features.cdi` nor `cdi-spec-dirs`: gpuctk warns and writes neither, so the daemon still
   starts) and with --cdi auto (the legacy row-9 decision, recorded);
3. --uninstall gives daemon.json's original bytes back.
The daemon is stopped (its process group) and its dirs removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.containers import busybox_path, stop_daemon
from support.tools import missing, require_root, require_tool, venv_script

pytestmark = pytest.mark.integration

IMAGE = "gpuctk-busybox:latest"
PROBE = 'cd /dev && for d in nvidia*; do [ -e "$d" ] && echo "dev $d"; done; exit 0'


class Dockerd:
    def __init__(self, base: str, docker: str) -> None:
        self.base = base
        self.docker_bin = docker
        self.socket = os.path.join(base, "docker.sock")

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [self.docker_bin, "-H", f"unix://{self.socket}", *args],
            input=input.decode("latin-1") if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return p

    def log(self) -> str:
        with (
            contextlib.suppress(OSError),
            open(os.path.join(self.base, "dockerd.log"), errors="replace") as f,
        ):
            return f.read()[-4000:]
        return ""


def _tools() -> tuple[str, str]:
    dockerd = require_tool("dockerd")
    # the client of the same package (a newer CLI elsewhere on PATH would do too, but this
    # one is known to speak the daemon's API)
    docker = os.path.join(os.path.dirname(os.path.realpath(dockerd)).replace("/sbin", "/bin"), "docker")
    if not os.access(docker, os.X_OK):
        docker = require_tool("docker")
    p = subprocess.run([dockerd, "--version"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        missing(f"dockerd --version fails: {p.stderr.strip()}")
    return dockerd, docker


@contextlib.contextmanager
def private_dockerd(base: str, config: str, env: dict[str, str]) -> Iterator[Dockerd]:
    dockerd, docker = _tools()
    os.makedirs(base, exist_ok=True)
    logf = open(os.path.join(base, "dockerd.log"), "w")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        [
            dockerd,
            "--config-file",
            config,
            "--data-root",
            os.path.join(base, "data"),
            "--exec-root",
            os.path.join(base, "exec"),
            "--pidfile",
            os.path.join(base, "docker.pid"),
            "-H",
            f"unix://{os.path.join(base, 'docker.sock')}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--storage-driver",
            "vfs",
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **env},
    )
    d = Dockerd(base, docker)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"dockerd exited ({proc.returncode}):\n{d.log()}")
            if os.path.exists(d.socket) and d.docker("version").returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not come up:\n{d.log()}")
            time.sleep(0.2)
        yield d
    finally:
        stop_daemon(proc, logf, base, timeout=30)


def _import_busybox(d: Dockerd, work: str) -> None:
    rootfs = os.path.join(work, "rootfs.tar")
    with tarfile.open(rootfs, "w") as tf:
        tf.add(busybox_path(), "bin/busybox")
        for name in ("sh", "ls", "echo", "cat", "test"):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        for dname in ("dev", "proc", "sys", "etc", "tmp"):
            info = tarfile.TarInfo(dname)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
    r = d.docker("import", rootfs, IMAGE)
    assert r.returncode == 0, r.stderr + d.log()


def _gpuctk(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([venv_script("gpuctk"), *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"gpuctk {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p


def _devices(r: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        line[4:] for line in r.stdout.splitlines() if line.startswith("dev nvidia") and line[10:].isdigit()
    }


def test_dockerd_20_10_configure_run_and_uninstall() -> None:
    require_root()
    _tools()
    from cri.node import provision_gpu_node, toolkit_config_text

    work = tempfile.mkdtemp(prefix=f"gpuctk-dockerd-{os.getpid()}-")
    base = f"/tmp/gpuctk-dk-{os.getpid()}"  # short: the socket path limit
    try:
        gpu = provision_gpu_node(os.path.join(work, "gpu"))
        tk_config = os.path.join(work, "toolkit.toml")
        Path(tk_config).write_text(toolkit_config_text(gpu, os.path.join(work, "runtime.log")))
        env = {
            "NVIDIA_CTK_CONFIG_FILE_PATH": tk_config,
            "PATH": f"{os.path.dirname(venv_script('gpuctk-runtime'))}:{os.environ.get('PATH', '')}",
        }
        config = os.path.join(work, "daemon.json")
        original = '{\n  "log-level": "info",\n  "features": {"buildkit": true}\n}\n'
        Path(config).write_text(original)
        runtime = venv_script("gpuctk-runtime")
        common = [
            "runtime",
            "configure",
            "--runtime",
            "docker",
            "--config",
            config,
            "--runtime-path",
            runtime,
        ]

        # (1) no CDI flags
        _gpuctk(*common)
        with private_dockerd(os.path.join(base, "a"), config, env) as d:
            info = d.docker("info", "--format", "{{json .Runtimes}}")
            assert info.returncode == 0 and "nvidia" in json.loads(info.stdout), info.stderr + d.log()
            _import_busybox(d, work)
            plain = d.docker("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo plain-ok; " + PROBE)
            assert plain.returncode == 0 and "plain-ok" in plain.stdout, plain.stderr + d.log()
            assert _devices(plain) == set()
            wanted = [gpu.gpus[0], gpu.gpus[-1]]
            r = d.docker(
                "run", "--rm", "--network", "none", "--runtime", "nvidia",
                "-e", "NVIDIA_VISIBLE_DEVICES=" + ",".join(g["uuid"] for g in wanted),
                IMAGE, "sh", "-c", PROBE,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr + d.log()
            assert _devices(r) == gpu.gpu_nodes(wanted), r.stdout + r.stderr
            none = d.docker(
                "run", "--rm", "--network", "none", "--runtime", "nvidia", IMAGE, "sh", "-c", PROBE
            )
            assert none.returncode == 0 and _devices(none) == set(), none.stdout + none.stderr

        # (2) CDI flags on Docker 20.10: warned about, not written; the daemon still starts
        p = _gpuctk(*common, "--enable-cdi", "--cdi-spec-dir", "/etc/cdi", "--set-as-default")
        assert "features.cdi not written" in p.stderr and "cdi-spec-dirs" in p.stderr
        data = json.loads(Path(config).read_text())
        assert "cdi-spec-dirs" not in data and "cdi" not in data.get("features", {})
        assert data["default-runtime"] == "nvidia"
        status = os.path.join(work, "decision.json")
        _gpuctk(*common, "--cdi", "auto", "--status-file", status)
        assert json.loads(Path(status).read_text())["decision"]["row"] == 9
        with private_dockerd(os.path.join(base, "b"), config, env) as d:
            info = d.docker("info", "--format", "{{.DefaultRuntime}}")
            assert info.returncode == 0 and info.stdout.strip() == "nvidia", info.stderr + d.log()
            _import_busybox(d, work)
            plain = d.docker("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo plain-ok; " + PROBE)
            assert plain.returncode == 0 and "plain-ok" in plain.stdout, plain.stderr + d.log()
            assert _devices(plain) == set()  # the default nvidia runtime adds nothing unasked

        # (3) uninstall: the original bytes
        _gpuctk(*common, "--uninstall", "--status-file", status)
        assert Path(config).read_text() == original
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
