"""gpuctk-runtime end to end with real engines: runc, podman and containerd 1.6 (no native CDI).

Each test builds a CDI spec dir whose device node is a real character device (mknod in a
temp dev root), plus an env var and a mounted file, and checks from inside the running
container that the node has the right major:minor, the env is set and the file is readable.

How the runtime finds its config: runc is called with NVIDIA_CTK_CONFIG_FILE_PATH in its
environment. podman does not pass its own environment to the runtime (conmon gets a fixed
set), and containerd's shims inherit containerd's environment, so for those the runtime
named to the engine is a two-line wrapper script that exports NVIDIA_CTK_CONFIG_FILE_PATH
and execs gpuctk-runtime (what an installer does with a drop-in config file instead).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from support.containers import (
    containerd_base_config,
    make_bundle,
    mknod_char,
    podman_run,
    private_containerd,
    runc_run,
)
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration

MAJOR, MINOR = 195, 7
EXPECTED = [f"{MAJOR:x}:{MINOR:x}", "env=gpuctk-e2e", "fake-driver-library"]
CHECK = "stat -c %t:%T /dev/nvidia0; echo env=$GPUCTK_FAKE_GPU; cat /usr/lib/libfake-gpu.so.1"


class Node:
    """A temp "GPU node": dev root with a char device, a library file, a CDI spec dir and a config."""

    def __init__(self, root: Path, mode: str = "auto", hook_path: str | None = None) -> None:
        require_root()
        self.root = root
        self.dev = mknod_char(str(root / "dev" / "nvidia0"), MAJOR, MINOR)
        lib = root / "lib" / "libfake-gpu.so.1"
        lib.parent.mkdir(parents=True)
        lib.write_text("fake-driver-library\n")
        self.spec_dir = root / "cdi"
        self.spec_dir.mkdir()
        node = {"path": "/dev/nvidia0", "hostPath": self.dev}
        spec = {
            "cdiVersion": "0.5.0",
            "kind": "nvidia.com/gpu",
            "devices": [
                {"name": "0", "containerEdits": {"deviceNodes": [node]}},
                {"name": "all", "containerEdits": {"deviceNodes": [node]}},
            ],
            "containerEdits": {
                "env": ["GPUCTK_FAKE_GPU=gpuctk-e2e"],
                "mounts": [
                    {
                        "hostPath": str(lib),
                        "containerPath": "/usr/lib/libfake-gpu.so.1",
                        "options": ["ro", "nosuid", "nodev", "bind"],
                    }
                ],
            },
        }
        (self.spec_dir / "gpuctk-e2e.json").write_text(json.dumps(spec))
        self.config = root / "config.toml"
        text = (
            f'[nvidia-container-runtime]\nmode = "{mode}"\nruntimes = ["runc"]\n'
            f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{self.spec_dir}"]\n'
        )
        if hook_path:
            text += f'[nvidia-container-runtime-hook]\npath = "{hook_path}"\n'
        self.config.write_text(text)
        self.runtime = venv_script("gpuctk-runtime")
        self.wrapper = root / "bin" / "gpuctk-runtime-e2e"
        self.wrapper.parent.mkdir()
        self.wrapper.write_text(
            f'#!/bin/sh\nexport NVIDIA_CTK_CONFIG_FILE_PATH="{self.config}"\nexec "{self.runtime}" "$@"\n'
        )
        self.wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {**os.environ, "NVIDIA_CTK_CONFIG_FILE_PATH": str(self.config)}


def lines(out: str) -> list[str]:
    return [line.strip() for line in out.strip().splitlines()]


# ------------------------------------------------------------------ runc
@pytest.mark.parametrize(
    ("mode", "request_value"), [("cdi", "0"), ("auto", "nvidia.com/gpu=0"), ("cdi", "all")]
)
def test_runc_cdi_and_auto(tmp_path, mode, request_value):
    node = Node(tmp_path, mode)
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", CHECK],
        env=["PATH=/bin", f"NVIDIA_VISIBLE_DEVICES={request_value}"],
    )
    r = runc_run(bundle, runtime=node.runtime, env=node.env())
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == EXPECTED
    spec = json.loads(Path(bundle, "config.json").read_text())
    assert any(d["path"] == "/dev/nvidia0" for d in spec["linux"]["devices"])


def test_runc_legacy_inserts_prestart_hook_that_runc_runs(tmp_path):
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "hooks" / "nvidia-container-runtime-hook"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$@" > "{marker}"\ncat > "{marker}.state"\n')
    hook.chmod(0o755)
    node = Node(tmp_path, "legacy", hook_path=str(hook))
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", "echo legacy-ok"],
        env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=0"],
    )
    r = runc_run(bundle, runtime=node.runtime, env=node.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "legacy-ok"
    spec = json.loads(Path(bundle, "config.json").read_text())
    (prestart,) = spec["hooks"]["prestart"]
    assert prestart["path"] == str(hook)
    assert prestart["args"] == ["nvidia-container-runtime-hook", "prestart"]
    assert prestart["env"][0].startswith("PATH=/")  # an explicit env, not the container's
    assert marker.read_text().strip() == "prestart"
    assert json.loads(Path(f"{marker}.state").read_text())["bundle"] == bundle


def test_runc_non_gpu_container_config_unchanged_to_the_byte(tmp_path):
    node = Node(tmp_path, "auto")
    bundle = make_bundle(
        str(tmp_path / "bundle"), ["sh", "-c", "echo plain"], env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=void"]
    )
    before = Path(bundle, "config.json").read_bytes()
    r = runc_run(bundle, runtime=node.runtime, env=node.env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "plain"
    assert Path(bundle, "config.json").read_bytes() == before


def test_runc_unresolvable_device_fails_before_runc_starts(tmp_path):
    node = Node(tmp_path, "cdi")
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", "echo should-not-run"],
        env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=7"],
    )
    before = Path(bundle, "config.json").read_bytes()
    r = runc_run(bundle, runtime=node.runtime, env=node.env())
    assert r.returncode == 1
    assert "nvidia.com/gpu=7" in r.stderr
    assert "should-not-run" not in r.stdout
    assert Path(bundle, "config.json").read_bytes() == before


# ------------------------------------------------------------------ podman
@pytest.mark.parametrize("how", ["env", "annotation"])
def test_podman(tmp_path, how):
    node = Node(tmp_path, "cdi")
    if how == "env":
        opts = ["-e", "NVIDIA_VISIBLE_DEVICES=0"]
    else:
        opts = ["--annotation", "cdi.k8s.io/gpuctk-e2e=nvidia.com/gpu=0"]
    r = podman_run([*opts, "--", "sh", "-c", CHECK], runtime=str(node.wrapper))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == EXPECTED


def test_podman_without_gpu_request_runs_plainly(tmp_path):
    node = Node(tmp_path, "auto")
    r = podman_run(
        ["--", "sh", "-c", "test -e /dev/nvidia0 && echo has-gpu || echo no-gpu"], runtime=str(node.wrapper)
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "no-gpu"


# ------------------------------------------------------------------ containerd 1.6
def test_containerd_ctr_env_and_annotation(tmp_path):
    node = Node(tmp_path, "cdi")
    base = f"/tmp/gpuctk-rt-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    # the default runc runtime's BinaryName is gpuctk-runtime (the CRI path); `ctr run` does not read
    # the CRI runtime table, so ctr is given the same binary with --runc-binary.
    config = containerd_base_config(base) + f'            BinaryName = "{node.wrapper}"\n'
    with private_containerd(base, config_text=config) as cd:
        ref = cd.import_busybox()
        r = cd.ctr(
            "run",
            "--rm",
            "--runc-binary",
            str(node.wrapper),
            "--env",
            "NVIDIA_VISIBLE_DEVICES=0",
            ref,
            "gpuctk-e2e-env",
            "sh",
            "-c",
            CHECK,
        )
        assert r.returncode == 0, r.stderr + cd.log()
        assert lines(r.stdout) == EXPECTED
        r = cd.ctr(
            "run",
            "--rm",
            "--runc-binary",
            str(node.wrapper),
            "--annotation",
            "cdi.k8s.io/gpuctk-e2e=nvidia.com/gpu=0",
            ref,
            "gpuctk-e2e-ann",
            "sh",
            "-c",
            CHECK,
        )
        assert r.returncode == 0, r.stderr + cd.log()
        assert lines(r.stdout) == EXPECTED
        r = cd.ctr(
            "run",
            "--rm",
            "--runc-binary",
            str(node.wrapper),
            "--env",
            "NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=9",
            ref,
            "gpuctk-e2e-bad",
            "sh",
            "-c",
            "echo should-not-run",
        )
        assert r.returncode != 0
        # the shim's error reaches ctr through runc's --log file (log-format json)
        assert "unresolvable CDI devices nvidia.com/gpu=9" in r.stderr


def test_runc_legacy_with_gpuctk_hook_runs_stub_nvidia_container_cli(tmp_path):
    """No configured hook on this node: the shim falls back to gpuctk-runtime-hook, which runc runs
    as a prestart hook; it calls the (stub) nvidia-container-cli found first in PATH."""
    record = tmp_path / "cli-argv"
    stub_dir = tmp_path / "stub-bin"
    stub_dir.mkdir()
    cli = stub_dir / "nvidia-container-cli"
    cli.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    cli.chmod(0o755)
    node = Node(tmp_path, "legacy", hook_path="/nonexistent/nvidia-container-runtime-hook")
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", "echo legacy-ok"],
        env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
    )
    env = {**node.env(), "PATH": f"{stub_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    r = runc_run(bundle, runtime=node.runtime, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "legacy-ok"
    hook = json.loads(Path(bundle, "config.json").read_text())["hooks"]["prestart"]
    assert [h["args"] for h in hook] == [["gpuctk-runtime-hook", "prestart"]]
    argv = record.read_text().splitlines()
    assert "configure" in argv
    assert "--device=0" in argv
    assert "--compute" in argv and "--utility" in argv
    assert any(a.startswith("--pid=") for a in argv)
    assert argv[-1] == os.path.join(bundle, "rootfs")


# ------------------------------------------------------------------ config.toml with unknown keys
UNKNOWN_KEYS = (
    "typo-key",  # a typo at the top level
    "nvidia-container-runtime.experimental",  # a key of an older upstream release
    "nvidia-container-runtime.modes.cdi.newer-key",  # a key of a newer release
    "some-future-table",
)


def config_with_unknown_keys(node: Node) -> None:
    text = node.config.read_text()
    text = text.replace("[nvidia-container-runtime]\n", "[nvidia-container-runtime]\nexperimental = false\n")
    text = text.replace(
        "[nvidia-container-runtime.modes.cdi]\n", "[nvidia-container-runtime.modes.cdi]\nnewer-key = true\n"
    )
    node.config.write_text("typo-key = 1\n" + text + "[some-future-table]\nx = 1\n")


def test_runc_unknown_config_keys_create_state_kill_delete_and_warn(tmp_path):
    """Every runtime command a container's life takes, through the installed shim and real runc,
    with a config.toml holding unknown keys: the GPU container runs, each key is a logged warning."""
    node = Node(tmp_path, "cdi")
    config_with_unknown_keys(node)
    bundle = make_bundle(
        str(tmp_path / "bundle"),
        ["sh", "-c", CHECK + "; echo done; exec sleep 60"],
        env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=0"],
    )
    state_root = tmp_path / "runc-root"
    log = tmp_path / "runc.log"
    out = tmp_path / "container.out"
    cid = f"gpuctk-unknown-{os.getpid()}"

    err = tmp_path / "runtime.err"

    def runtime(*args: str) -> subprocess.CompletedProcess:
        # files, not pipes: the container inherits create's stdio and keeps it open
        with open(out, "ab") as stdout, open(err, "ab") as stderr:
            return subprocess.run(
                [node.runtime, "--root", str(state_root), "--log", str(log), "--log-format", "json", *args],
                env=node.env(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                timeout=60,
            )

    def state() -> dict:
        r = subprocess.run(
            [node.runtime, "--root", str(state_root), "state", cid],
            env=node.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    try:
        r = runtime("create", "--bundle", bundle, cid)
        assert r.returncode == 0, err.read_text()
        assert state()["status"] == "created"
        r = runtime("start", cid)
        assert r.returncode == 0, err.read_text()
        deadline = time.monotonic() + 30  # waiting for output, not asserting on time
        while "done" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines(out.read_text()) == [*EXPECTED, "done"]
        assert state()["status"] == "running"
        r = runtime("kill", cid, "KILL")
        assert r.returncode == 0, err.read_text()
        while state()["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        r = runtime("delete", cid)
        assert r.returncode == 0, err.read_text()
    finally:
        subprocess.run(
            [require_tool("runc"), "--root", str(state_root), "delete", "--force", cid], capture_output=True
        )
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    warned = [e["msg"] for e in entries if e["level"] == "warning"]
    for key in UNKNOWN_KEYS:
        msg = f"{node.config}: unknown key {key!r} (ignored)"
        # once for each of create, start, kill and delete (state was called without --log)
        assert warned.count(msg) == 4, warned
    assert not [e for e in entries if e["level"] == "error"]


# ------------------------------------------------------------------ hooks never get the image's env
HOOK_TYPES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def test_runc_no_hook_of_any_type_sees_the_image_env(tmp_path):
    """The image sets LD_PRELOAD to a path in its rootfs (the CVE-2025-23266 pattern). Every hook,
    of every type, from the bundle's config.json and from a CDI spec, records the environment
    runc gave it: none sees LD_PRELOAD or any other variable of the image."""
    node = Node(tmp_path, "cdi")
    records = tmp_path / "records"
    records.mkdir()
    recorder = tmp_path / "record-env"
    recorder.write_text(f'#!/bin/sh\nenv > "{records}/$1.env"\n')
    recorder.chmod(0o755)
    # a CDI spec hook without an env of its own (like third-party and older upstream specs)
    spec_path = node.spec_dir / "gpuctk-e2e.json"
    cdi = json.loads(spec_path.read_text())
    cdi["containerEdits"]["hooks"] = [
        {"hookName": "createContainer", "path": str(recorder), "args": ["record-env", "cdi-createContainer"]}
    ]
    spec_path.write_text(json.dumps(cdi))
    image_env = [
        "PATH=/bin",
        "NVIDIA_VISIBLE_DEVICES=0",
        "LD_PRELOAD=/proc/self/cwd/evil.so",
        "IMAGE_SECRET=x",
    ]
    bundle = make_bundle(str(tmp_path / "bundle"), ["sh", "-c", "echo ran"], env=image_env)
    rootfs = Path(bundle, "rootfs")
    (rootfs / "record-env").write_text('#!/bin/sh\nenv > "/$1.env"\n')  # startContainer runs in the container
    (rootfs / "record-env").chmod(0o755)
    config = json.loads(Path(bundle, "config.json").read_text())
    config["hooks"] = {
        t: [{"path": "/record-env" if t == "startContainer" else str(recorder), "args": ["record-env", t]}]
        for t in HOOK_TYPES
    }
    Path(bundle, "config.json").write_text(json.dumps(config))
    r = runc_run(bundle, runtime=node.runtime, env={**node.env(), "LD_PRELOAD": "", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ran"
    seen = {p.stem: p.read_text() for p in records.glob("*.env")}
    seen["startContainer"] = (rootfs / "startContainer.env").read_text()
    assert sorted(seen) == sorted([*HOOK_TYPES, "cdi-createContainer"])
    for name, text in seen.items():
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert "LD_PRELOAD" not in env and "IMAGE_SECRET" not in env, (name, env)
        assert env["PATH"] == "/usr/bin:/bin", (name, env)


# ------------------------------------------------------------------ csv mode (Jetson) under runc
def test_runc_csv_mode_mount_spec_path_on_the_host_and_csv_mounts_all(tmp_path):
    """csv mode with the CSV files in a host directory outside the driver root (as upstream
    reads ``modes.csv.mount-spec-path``): the base files give the device node and the base
    library; ``extra.csv`` is used only with ``NVIDIA_REQUIRE_JETPACK=csv-mounts=all``."""
    require_root()
    root = tmp_path / "jetson"
    mknod_char(str(root / "dev" / "nvhost-gpu"), MAJOR, MINOR)
    libdir = root / "usr" / "lib"
    libdir.mkdir(parents=True)
    (libdir / "libjetson-base.so.1").write_text("base-library\n")
    (libdir / "libjetson-extra.so.1").write_text("extra-library\n")
    specs = tmp_path / "host-files-for-container.d"
    specs.mkdir()
    (specs / "devices.csv").write_text("dev, /dev/nvhost-gpu\n")
    (specs / "drivers.csv").write_text("lib, /usr/lib/libjetson-base.so.1\n")
    (specs / "extra.csv").write_text("lib, /usr/lib/libjetson-extra.so.1\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[nvidia-container-cli]\nroot = "{root}"\n'
        '[nvidia-container-runtime]\nmode = "csv"\nruntimes = ["runc"]\n'
        f'[nvidia-container-runtime.modes.csv]\nmount-spec-path = "{specs}"\n'
    )
    env = {
        **os.environ,
        "NVIDIA_CTK_CONFIG_FILE_PATH": str(config),
        "GPUCTK_JIT_CACHE_DIR": str(tmp_path / "jit-cache"),
    }
    check = (
        "stat -c %t:%T /dev/nvhost-gpu; cat /usr/lib/libjetson-base.so.1; "
        "cat /usr/lib/libjetson-extra.so.1 2>/dev/null || echo no-extra"
    )
    outputs: list[list[str]] = []
    for jetpack in ([], ["NVIDIA_REQUIRE_JETPACK=csv-mounts=all"]):
        bundle = make_bundle(
            str(tmp_path / f"bundle{len(outputs)}"),
            ["sh", "-c", check],
            env=["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all", *jetpack],
        )
        r = runc_run(bundle, runtime=venv_script("gpuctk-runtime"), env=env)
        assert r.returncode == 0, r.stderr
        outputs.append(lines(r.stdout))
    device = f"{MAJOR:x}:{MINOR:x}"
    assert outputs == [[device, "base-library", "no-extra"], [device, "base-library", "extra-library"]]
