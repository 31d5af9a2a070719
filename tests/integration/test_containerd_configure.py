"""containerd 1.6 round trip: configure -> containerd runs it -> GPU injected -> uninstall.

1. `gpuctk install` puts the launchers in a temp toolkit dir and `gpuctk runtime configure
   --runtime containerd --set-as-default` registers the installed `nvidia-container-runtime`
   launcher with a private containerd (its own root, state and socket).
2. The private containerd starts on that config and `containerd config dump` shows the runtime
   as default, with BinaryName = the launcher.
3. `ctr run` a busybox container with `NVIDIA_VISIBLE_DEVICES=0`, and one with a `cdi.k8s.io/`
   annotation: the simulated GPU (a CDI spec whose device node is a real char device) is injected.
   ctr talks to containerd's task service and bypasses the CRI plugin, so it never reads the
   CRI runtime table; the test passes the BinaryName it read from `config dump` to
   `ctr run --runc-binary` (which sets the runc shim's BinaryName option exactly like the CRI
   entry does), so the configured value is the one that runs.
4. `--uninstall`: containerd still starts, the runtime is gone from `config dump`, and a
   container started the way the config now says (plain runc) gets no device.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from support.containers import containerd_base_config, mknod_char, private_containerd
from support.tools import require_root, venv_script

pytestmark = pytest.mark.integration

CRI = "io.containerd.grpc.v1.cri"
PROBE = "test -c /dev/nvidia0 && echo has-gpu || echo no-gpu; echo sim=${GPUCTK_SIM_GPU:-none}"


def _gpuctk(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([venv_script("gpuctk"), *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"gpuctk {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p


def _dump(config: str) -> dict:
    p = subprocess.run(
        ["containerd", "--config", config, "config", "dump"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return tomllib.loads(p.stdout)


def _write_cdi_spec(spec_dir: str, node: str) -> None:
    os.makedirs(spec_dir, exist_ok=True)
    spec = {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {
                "name": "0",
                "containerEdits": {
                    "deviceNodes": [{"path": "/dev/nvidia0", "hostPath": node}],
                    "env": ["GPUCTK_SIM_GPU=0"],
                },
            }
        ],
        "containerEdits": {"env": ["NVIDIA_VISIBLE_DEVICES=void"]},
    }
    with open(os.path.join(spec_dir, "sim-gpu.json"), "w") as f:
        json.dump(spec, f)


def test_containerd_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    runtime = venv_script("gpuctk-runtime")
    if subprocess.run([runtime, "--version"], capture_output=True).returncode != 0:
        pytest.fail("gpuctk-runtime --version fails: the runtime shim is not usable")
    base = f"/tmp/gpuctk-eng-{os.getpid()}"
    tk = os.path.join(base, "tk")
    config = os.path.join(base, "config.toml")
    drop_in = os.path.join(base, "conf.d", "99-nvidia.toml")
    tk_config = os.path.join(base, "nvidia-container-runtime", "config.toml")
    spec_dir = os.path.join(base, "cdi")
    os.makedirs(base, exist_ok=True)
    try:
        with open(config, "w") as f:
            f.write(containerd_base_config(base))
        node = mknod_char(os.path.join(base, "dev", "nvidia0"), 195, 0)
        _write_cdi_spec(spec_dir, node)

        # (1) launchers + toolkit config (cdi mode, our spec dir), then the engine config
        _gpuctk(
            "install",
            "--toolkit-dir",
            tk,
            "--root",
            base,
            "--config-file",
            tk_config,
            "--runtime",
            "none",
            "--runtime-mode",
            "cdi",
            "--cdi-spec-dir",
            spec_dir,
            "--no-cdi-spec",
            "--no-units",
        )
        launcher = os.path.join(tk, "nvidia-container-runtime")
        assert os.path.islink(launcher)
        configure = [
            "runtime",
            "configure",
            "--runtime",
            "containerd",
            "--config",
            config,
            "--drop-in-config",
            drop_in,
            "--runtime-path",
            launcher,
            "--set-as-default",
        ]
        _gpuctk(*configure)
        before_second = {p: Path(p).read_bytes() for p in (config, drop_in)}
        _gpuctk(*configure)
        assert {p: Path(p).read_bytes() for p in (config, drop_in)} == before_second

        # the shim (and so the launcher) reads its config from the env containerd passes down
        monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", tk_config)

        # (2) containerd runs on it; config dump shows the runtime as the default
        dump = _dump(config)
        ctd = dump["plugins"][CRI]["containerd"]
        assert ctd["default_runtime_name"] == "nvidia"
        binary = ctd["runtimes"]["nvidia"]["options"]["BinaryName"]
        assert binary == launcher
        assert ctd["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"

        with private_containerd(os.path.join(base, "c1"), config_path=config) as cd:
            ref = cd.import_busybox()
            # (3) NVIDIA_VISIBLE_DEVICES through the configured BinaryName
            r = cd.ctr(
                "run",
                "--rm",
                "--runc-binary",
                binary,
                "--env",
                "NVIDIA_VISIBLE_DEVICES=0",
                ref,
                f"gpuctk-eng-env-{os.getpid()}",
                "sh",
                "-c",
                PROBE,
            )
            assert r.returncode == 0, r.stderr + cd.log()
            assert r.stdout.split() == ["has-gpu", "sim=0"], r.stdout + r.stderr
            # ... and a cdi.k8s.io/ annotation
            r = cd.ctr(
                "run",
                "--rm",
                "--runc-binary",
                binary,
                "--annotation",
                "cdi.k8s.io/gpuctk-test=nvidia.com/gpu=0",
                ref,
                f"gpuctk-eng-ann-{os.getpid()}",
                "sh",
                "-c",
                PROBE,
            )
            assert r.returncode == 0, r.stderr + cd.log()
            assert r.stdout.split() == ["has-gpu", "sim=0"], r.stdout + r.stderr
            # without a request the same runtime adds nothing
            r = cd.ctr(
                "run",
                "--rm",
                "--runc-binary",
                binary,
                ref,
                f"gpuctk-eng-none-{os.getpid()}",
                "sh",
                "-c",
                PROBE,
            )
            assert r.stdout.split() == ["no-gpu", "sim=none"], r.stdout + r.stderr

        # (4) uninstall: containerd still starts and containers no longer get the device
        _gpuctk(*configure[:8], "--uninstall")
        assert not os.path.exists(drop_in)
        ctd = _dump(config)["plugins"][CRI]["containerd"]
        assert "nvidia" not in ctd["runtimes"]
        assert ctd["default_runtime_name"] == "runc"
        binary = ctd["runtimes"]["runc"].get("options", {}).get("BinaryName") or "runc"
        with private_containerd(os.path.join(base, "c2"), config_path=config) as cd:
            ref = cd.import_busybox()
            r = cd.ctr(
                "run",
                "--rm",
                "--runc-binary",
                binary,
                "--env",
                "NVIDIA_VISIBLE_DEVICES=0",
                ref,
                f"gpuctk-eng-after-{os.getpid()}",
                "sh",
                "-c",
                PROBE,
            )
            assert r.returncode == 0, r.stderr + cd.log()
            assert r.stdout.split() == ["no-gpu", "sim=none"]
        _gpuctk("install", "--toolkit-dir", tk, "--root", base, "--uninstall")
        assert not os.path.exists(tk)
    finally:
        subprocess.run(["rm", "-rf", base], capture_output=True)


def test_containerd_16_without_a_config_file_still_serves_cri() -> None:
    """Defect 1: on a node with no config.toml, `runtime configure --cdi auto` creates
    `version = 2` + `imports` + a drop-in; containerd 1.6 replaces its whole CRI table with
    the drop-in's, so the drop-in must carry runc too. containerd restarts on it and the CRI
    plugin serves (a Version call over CRI, the kubelet's first request)."""
    require_root()
    from cri.client import CRIClient

    base = f"/tmp/gpuctk-nocfg-{os.getpid()}"
    config = os.path.join(base, "config.toml")
    drop_in = os.path.join(base, "conf.d", "99-nvidia.toml")
    os.makedirs(base, exist_ok=True)
    try:
        assert not os.path.exists(config)
        _gpuctk(
            "runtime",
            "configure",
            "--runtime",
            "containerd",
            "--config",
            config,
            "--drop-in-config",
            drop_in,
            "--cdi",
            "auto",
            "--status-file",
            os.path.join(base, "decision.json"),
        )
        with open(os.path.join(base, "decision.json")) as f:
            assert json.load(f)["decision"]["path"] == "nvidia-runtime-cdi"
        ctd = _dump(config)["plugins"][CRI]["containerd"]
        assert ctd["default_runtime_name"] == "nvidia"
        assert {"nvidia", "runc"} <= set(ctd["runtimes"])
        with private_containerd(os.path.join(base, "c"), config_path=config) as cd:
            assert "failed to load plugin io.containerd.grpc.v1.cri" not in cd.log()
            with CRIClient(cd.socket) as client:
                v = client.version()
            assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1"), cd.log()
        # and back: no file again
        _gpuctk(
            "runtime",
            "configure",
            "--runtime",
            "containerd",
            "--config",
            config,
            "--drop-in-config",
            drop_in,
            "--status-file",
            os.path.join(base, "decision.json"),
            "--uninstall",
        )
        assert not os.path.exists(config) and not os.path.exists(drop_in)
        assert not os.path.exists(os.path.join(base, "decision.json"))
    finally:
        subprocess.run(["rm", "-rf", base], capture_output=True)
