"""The shim as a process: exec of the low-level runtime, pass-through, failures, program names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.tools import venv_script

STUB = """#!/bin/sh
printf '%s\\n' "$0" "$@" > "$STUB_OUT"
echo "stub-ran"
"""


@pytest.fixture
def env(tmp_path):
    stub = tmp_path / "bin" / "fake-runc"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[nvidia-container-runtime]\nruntimes = ["not-there-runtime", "{stub}"]\nmode = "legacy"\n'
    )
    e = {k: v for k, v in os.environ.items() if not k.startswith(("NVIDIA_", "XDG_CONFIG"))}
    e.update({"NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg), "STUB_OUT": str(tmp_path / "stub.out")})
    return {"env": e, "stub": str(stub), "out": tmp_path / "stub.out", "cfg": cfg, "tmp": tmp_path}


def bundle(tmp_path: Path, env_vars: list[str], hooks: dict | None = None) -> Path:
    b = tmp_path / "bundle"
    b.mkdir(exist_ok=True)
    s = {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "env": ["PATH=/bin", *env_vars]},
        "root": {"path": "rootfs"},
        "x-vendor-field": {"a": 1},
    }
    if hooks:
        s["hooks"] = hooks
    # unusual but valid formatting: a pass-through must keep it to the byte
    (b / "config.json").write_text(json.dumps(s, indent=3) + "\n\n")
    (b / "config.json").chmod(0o600)
    return b


def shim(e, *args, prog="gpuctk-runtime", cwd=None):
    exe = venv_script(prog) if "/" not in prog else prog
    return subprocess.run([exe, *args], env=e["env"], capture_output=True, text=True, cwd=cwd, timeout=60)


def stub_argv(e) -> list[str]:
    return e["out"].read_text().splitlines()


def test_non_create_commands_are_execd_unchanged(env):
    r = shim(env, "--root", "/run/x", "state", "abc")
    assert r.returncode == 0, r.stderr
    assert stub_argv(env) == [env["stub"], "--root", "/run/x", "state", "abc"]


def test_create_without_gpu_leaves_config_json_byte_for_byte(env):
    b = bundle(env["tmp"], ["FOO=bar"])
    before = (b / "config.json").read_bytes()
    st = os.stat(b / "config.json")
    r = shim(env, "--root", "/run/x", "create", "--bundle", str(b), "cid")
    assert r.returncode == 0, r.stderr
    assert stub_argv(env) == [env["stub"], "--root", "/run/x", "create", "--bundle", str(b), "cid"]
    assert (b / "config.json").read_bytes() == before
    assert os.stat(b / "config.json").st_ino == st.st_ino  # not even rewritten


def test_create_uses_cwd_config_json_without_bundle_flag(env):
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=all"])
    r = shim(env, "create", "cid", cwd=str(b))
    assert r.returncode == 0, r.stderr
    spec = json.loads((b / "config.json").read_text())
    assert [h["args"] for h in spec["hooks"]["prestart"]] == [["gpuctk-runtime-hook", "prestart"]]


def test_legacy_create_inserts_hook_atomically_keeping_mode_and_unknown_fields(env):
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    r = shim(env, "create", "-b", str(b), "cid")
    assert r.returncode == 0, r.stderr
    spec = json.loads((b / "config.json").read_text())
    hooks = spec["hooks"]["prestart"]
    assert len(hooks) == 1 and os.path.basename(hooks[0]["path"]) == "gpuctk-runtime-hook"
    assert os.path.isabs(hooks[0]["path"]) and os.access(hooks[0]["path"], os.X_OK)
    assert spec["x-vendor-field"] == {"a": 1}
    assert (b / "config.json").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in b.iterdir()] == ["config.json"]  # no temp file left
    shim(env, "create", "-b", str(b), "cid")
    assert len(json.loads((b / "config.json").read_text())["hooks"]["prestart"]) == 1


def test_configured_hook_path_is_used_when_it_exists(env):
    hook = env["tmp"] / "nvidia-container-runtime-hook"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    env["cfg"].write_text(env["cfg"].read_text() + f'[nvidia-container-runtime-hook]\npath = "{hook}"\n')
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0", "LD_PRELOAD=/proc/self/cwd/x.so"])
    env["env"]["PATH"] = "relative/bin:/usr/bin:/bin"
    assert shim(env, "create", "--bundle", str(b), "cid").returncode == 0
    assert json.loads((b / "config.json").read_text())["hooks"]["prestart"] == [
        {
            "path": str(hook),
            "args": ["nvidia-container-runtime-hook", "prestart"],
            # the shim's own (absolute) PATH and config file, never the container's env
            "env": ["PATH=/usr/bin:/bin", f"NVIDIA_CTK_CONFIG_FILE_PATH={env['cfg']}"],
        }
    ]


@pytest.mark.parametrize("name", ["gpuctk-runtime.cdi", "nvidia-container-runtime.cdi", "gpuctk-runtime-cdi"])
def test_program_name_forces_cdi_mode(env, name):
    prog = env["tmp"] / name
    if name == "gpuctk-runtime-cdi":
        prog = Path(venv_script(name))
    else:
        prog.symlink_to(venv_script("gpuctk-runtime"))
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=missing"])
    before = (b / "config.json").read_bytes()
    env["env"]["GPUCTK_TEST_SPEC_DIR"] = str(env["tmp"] / "empty-cdi")
    env["cfg"].write_text(
        env["cfg"].read_text()
        + f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{env["tmp"] / "empty-cdi"}"]\n'
    )
    r = shim(env, "create", "--bundle", str(b), "cid", prog=str(prog))
    # cdi mode (not the configured legacy): the device cannot be resolved from an empty spec dir
    assert r.returncode == 1
    assert "nvidia.com/gpu=missing" in r.stderr
    assert (b / "config.json").read_bytes() == before
    assert not env["out"].exists()


def test_legacy_program_name_forces_legacy_mode(env):
    env["cfg"].write_text(env["cfg"].read_text().replace('mode = "legacy"', 'mode = "cdi"'))
    prog = env["tmp"] / "nvidia-container-runtime.legacy"
    prog.symlink_to(venv_script("gpuctk-runtime"))
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    assert shim(env, "create", "--bundle", str(b), "cid", prog=str(prog)).returncode == 0
    assert "hooks" in json.loads((b / "config.json").read_text())


def test_failure_reports_to_stderr_and_runc_log_and_never_starts_runtime(env):
    env["cfg"].write_text(
        env["cfg"].read_text().replace('mode = "legacy"', 'mode = "jit-cdi"')
        + '[nvidia-container-runtime-hook]\npath = "/nonexistent/hook"\n'
    )
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0,nvidia.com/gpu=1"])
    before = (b / "config.json").read_bytes()
    log = env["tmp"] / "logs" / "runc.log"
    r = shim(env, "--log", str(log), "--log-format", "json", "create", "--bundle", str(b), "cid")
    assert r.returncode == 1
    assert "requesting a CDI device with vendor 'runtime.nvidia.com' is not supported" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error" and "runtime.nvidia.com" in entries[-1]["msg"]
    assert (b / "config.json").read_bytes() == before
    assert not env["out"].exists()


def test_bad_argv_and_missing_spec_fail_cleanly(env):
    r = shim(env, "create", "--bundle")
    assert r.returncode == 1 and "bundle option requires an argument" in r.stderr
    r = shim(env, "create", "--bundle", str(env["tmp"] / "nope"), "cid")
    assert r.returncode == 1 and "config.json" in r.stderr and "not found" in r.stderr
    assert not env["out"].exists()


UNKNOWN_KEYS_TOML = (
    "typo-at-top = 1\n[nvidia-container-runtime.future]\nx = 1\n"
    "[nvidia-container-runtime.modes.cdi]\nnew-key = true\n"
)


def with_unknown_keys(env) -> None:
    text = (
        env["cfg"]
        .read_text()
        .replace("[nvidia-container-runtime]\n", "[nvidia-container-runtime]\nexperimental = false\n")
    )
    env["cfg"].write_text(UNKNOWN_KEYS_TOML + text)


@pytest.mark.parametrize(
    "argv",
    [["state", "x"], ["kill", "x", "KILL"], ["delete", "--force", "x"], ["create", "--bundle", "{b}", "x"]],
    ids=["state", "kill", "delete", "create-gpu"],
)
def test_unknown_config_keys_never_fail_a_command_and_are_logged(env, argv):
    with_unknown_keys(env)
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    log = env["tmp"] / "runc.log"
    args = [a.replace("{b}", str(b)) for a in argv]
    r = shim(env, "--log", str(log), "--log-format", "json", *args)
    assert r.returncode == 0, r.stderr
    assert stub_argv(env) == [env["stub"], "--log", str(log), "--log-format", "json", *args]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    warned = sorted(e["msg"] for e in entries if e["level"] == "warning")
    assert warned == sorted(
        f"{env['cfg']}: unknown key {k!r} (ignored)"
        for k in (
            "typo-at-top",
            "nvidia-container-runtime.future",
            "nvidia-container-runtime.modes.cdi.new-key",
            "nvidia-container-runtime.experimental",
        )
    )
    if argv[0] == "create":  # the GPU container was modified as usual (legacy: the prestart hook)
        assert json.loads((b / "config.json").read_text())["hooks"]["prestart"]


def runc_named_stub(env) -> None:
    """Put the stub first in PATH under the name ``runc`` (the default runtimes' first entry)."""
    d = env["tmp"] / "path-bin"
    d.mkdir()
    (d / "runc").symlink_to(env["stub"])
    env["env"]["PATH"] = f"{d}:{env['env'].get('PATH', '/usr/bin:/bin')}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is = = not toml\n", "invalid TOML"),
        ('[nvidia-container-runtime]\nruntimes = "runc"\n', "nvidia-container-runtime.runtimes"),
        ('disable-require = "yes"\n', "disable-require: expected a boolean"),
        ('[nvidia-container-runtime]\nmode = "magic"\n', "nvidia-container-runtime.mode"),
    ],
    ids=["not-toml", "runtimes-wrong-type", "bool-wrong-type", "bad-mode"],
)
def test_bad_config_never_fails_a_pass_through_command(env, text, message):
    runc_named_stub(env)
    env["cfg"].write_text(text)
    log = env["tmp"] / "runc.log"
    r = shim(env, "--log", str(log), "--log-format", "json", "state", "x")
    assert r.returncode == 0, r.stderr
    assert stub_argv(env)[-2:] == ["state", "x"]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(
        e["level"] == "warning" and message in e["msg"] and str(env["cfg"]) in e["msg"] for e in entries
    )


def test_wrong_typed_key_fails_only_a_container_that_asks_for_a_gpu(env):
    env["cfg"].write_text(
        env["cfg"].read_text() + '[nvidia-container-runtime.modes.cdi]\nspec-dirs = "/etc/cdi"\n'
    )
    b = bundle(env["tmp"], [])
    before = (b / "config.json").read_bytes()
    log = env["tmp"] / "runc.log"
    r = shim(env, "--log", str(log), "create", "--bundle", str(b), "plain")
    assert r.returncode == 0, r.stderr  # no GPU asked for: the key is not needed
    assert (b / "config.json").read_bytes() == before
    assert "level=warning" in log.read_text() and "spec-dirs: expected a list of strings" in log.read_text()
    env["out"].unlink()
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    before = (b / "config.json").read_bytes()
    r = shim(env, "create", "--bundle", str(b), "gpu")
    assert r.returncode == 1
    assert (
        f"{env['cfg']}: nvidia-container-runtime.modes.cdi.spec-dirs: expected a list of strings" in r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1
    assert (b / "config.json").read_bytes() == before
    assert not env["out"].exists()


def test_create_fails_on_a_config_that_is_not_toml(env):
    env["cfg"].write_text("this is = = not toml\n")
    b = bundle(env["tmp"], [])
    r = shim(env, "create", "--bundle", str(b), "x")
    assert r.returncode == 1 and "invalid TOML" in r.stderr and str(env["cfg"]) in r.stderr
    assert not env["out"].exists()


def test_no_runtime_found(env):
    env["cfg"].write_text('[nvidia-container-runtime]\nruntimes = ["definitely-not-a-runtime"]\n')
    r = shim(env, "state", "x")
    assert r.returncode == 1 and "no low-level runtime found" in r.stderr


def test_version_prints_ours_then_execs_runtime(env):
    r = shim(env, "--version")
    assert r.returncode == 0
    assert r.stdout.startswith("gpuctk-runtime version ")
    assert "stub-ran" in r.stdout
    assert stub_argv(env) == [env["stub"], "--version"]


def test_debug_log_file_gets_argv_at_debug_level(env):
    log = env["tmp"] / "rt.log"
    env["cfg"].write_text(env["cfg"].read_text() + f'debug = "{log}"\nlog-level = "debug"\n')
    # (keys appended after [nvidia-container-runtime] table body: still that table)
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    assert shim(env, "create", "--bundle", str(b), "cid").returncode == 0
    text = log.read_text()
    assert "Command line arguments" in text and "'create'" in text
    assert "Added prestart hook" in text


def test_runc_debug_flag_raises_level(env):
    log = env["tmp"] / "runc.log"
    b = bundle(env["tmp"], [])
    assert shim(env, "--debug", "--log", str(log), "create", "--bundle", str(b), "cid").returncode == 0
    assert "level=debug" in log.read_text()


CHECK_MODULES = r"""
import json, sys
at_startup = set(sys.modules)  # site's .pth hooks (e.g. setuptools' distutils hack) are not ours
import gpuctk.runtime.main as m
def fake_exec(path, args):
    third = sorted(n for n in set(sys.modules) - at_startup
                   if n.split('.')[0] not in sys.stdlib_module_names and n.split('.')[0] != 'gpuctk')
    print(json.dumps(third))
    sys.exit(0)
m._exec = fake_exec
sys.exit(m.run(['gpuctk-runtime', 'create', '--bundle', sys.argv[1], 'cid']))
"""


@pytest.mark.parametrize(
    ("mode", "request_env"),
    [
        ("legacy", []),
        ("legacy", ["NVIDIA_VISIBLE_DEVICES=all"]),
        ("cdi", ["NVIDIA_VISIBLE_DEVICES=0"]),
        ("auto", ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]),
    ],
)
def test_create_path_imports_only_stdlib(env, mode, request_env):
    spec_dir = env["tmp"] / "cdi"
    spec_dir.mkdir()
    (spec_dir / "x.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.5.0",
                "kind": "nvidia.com/gpu",
                "devices": [{"name": "0", "containerEdits": {"env": ["GPU0=yes"]}}],
                "containerEdits": {"env": ["FROM_SPEC=1"]},
            }
        )
    )
    env["cfg"].write_text(
        env["cfg"].read_text().replace('mode = "legacy"', f'mode = "{mode}"')
        + f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{spec_dir}"]\n'
    )
    b = bundle(env["tmp"], request_env)
    r = subprocess.run(
        [sys.executable, "-c", CHECK_MODULES, str(b)],
        env=env["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
    spec = json.loads((b / "config.json").read_text())
    if mode == "legacy" and request_env:
        assert "hooks" in spec
    if mode != "legacy":
        assert "GPU0=yes" in spec["process"]["env"] and "FROM_SPEC=1" in spec["process"]["env"]


@pytest.mark.parametrize(
    ("raw", "prefixes", "swarm", "maybe"),
    [
        (b'{"process":{"env":["PATH=/bin"]}}', ["cdi.k8s.io/"], "", False),
        (b'{"process":{"env":["NVIDIA_VISIBLE_DEVICES=0"]}}', ["cdi.k8s.io/"], "", True),
        (b'{"process":{"env":["CUDA_VERSION=12.0"]}}', ["cdi.k8s.io/"], "", True),
        (b'{"annotations":{"cdi.k8s.io/x":"a/b=c"}}', ["cdi.k8s.io/"], "", True),
        (b'{"annotations":{"cdi.k8s.io/x":"a/b=c"}}', ["other/"], "", False),
        (b'{"mounts":[{"destination":"/var/run/nvidia-container-devices/0"}]}', [], "", True),
        (b'{"process":{"env":["DOCKER_RESOURCE_GPU=1"]}}', [], "DOCKER_RESOURCE_GPU", True),
        (
            b'{"process":{"env":["\\u004eVIDIA_VISIBLE_DEVICES=0"]}}',
            [],
            "",
            True,
        ),  # escaped: parse to be sure
        # JSON may escape "/": the annotation prefix "cdi.k8s.io/" is then not found as bytes
        (b'{"annotations":{"cdi.k8s.io\\/x":"vendor.com\\/gpu=0"}}', ["cdi.k8s.io/"], "", True),
    ],
)
def test_pass_through_precheck(raw, prefixes, swarm, maybe):
    from gpuctk.oci.spec import may_request_devices

    assert may_request_devices(raw, prefixes, swarm) is maybe


def test_config_error_reaches_runc_log(env):
    env["cfg"].write_text("bogus = = 1\n")
    log = env["tmp"] / "runc.log"
    r = shim(env, "--log", str(log), "--log-format", "json", "create", "--bundle", str(env["tmp"]), "cid")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "invalid TOML" in entry["msg"]


def test_create_path_does_not_import_json_or_re(env):
    """``json`` drags in ``re``/``enum``/``functools``: milliseconds on every container start.
    The create path parses and writes config.json through gpuctk._fastjson instead."""
    spec_dir = env["tmp"] / "cdi"
    spec_dir.mkdir()
    (spec_dir / "x.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.6.0",
                "kind": "nvidia.com/gpu",
                "devices": [{"name": "0", "containerEdits": {"env": ["GPU0=yes"]}}],
                "annotations": {"example.com/key": "v"},
            }
        )
    )
    env["cfg"].write_text(
        env["cfg"].read_text().replace('mode = "legacy"', 'mode = "cdi"')
        + f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{spec_dir}"]\n'
    )
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"])
    code = CHECK_MODULES.replace(
        "if n.split('.')[0] not in sys.stdlib_module_names and n.split('.')[0] != 'gpuctk')",
        "if n.split('.')[0] in ('json', 're', 'enum', 'tomllib'))",
    )
    e = {**env["env"], "GPUCTK_CONFIG_CACHE_DIR": str(env["tmp"] / "cache")}
    for _ in range(2):  # a cold cache (config and specs parsed) and a warm one
        (b / "config.json").write_text(json.dumps(json.loads((b / "config.json").read_text())))
        r = subprocess.run(
            [sys.executable, "-c", code, str(b)], env=e, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        imported = json.loads(r.stdout.strip().splitlines()[-1])
        assert [m for m in imported if m != "tomllib" and not m.startswith("tomllib.")] == []
    assert imported == []  # warm: not even tomllib
    assert "GPU0=yes" in json.loads((b / "config.json").read_text())["process"]["env"]


def test_write_failure_is_a_clean_error_and_keeps_the_spec(env, monkeypatch, capsys):
    import gpuctk.fileio
    from gpuctk.runtime import main as m

    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=all"])
    before = (b / "config.json").read_bytes()
    for k, v in env["env"].items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gpuctk.fileio, "atomic_write", full)
    monkeypatch.setattr(m, "_exec", lambda *a: pytest.fail("runtime started"))
    assert m.run(["gpuctk-runtime", "create", "--bundle", str(b), "cid"]) == 1
    err = capsys.readouterr().err
    assert "cannot write OCI spec: No space left on device" in err and "internal error" not in err
    assert (b / "config.json").read_bytes() == before


def test_lone_surrogate_in_spec_survives_rewrite(env):
    """json.loads accepts an escaped lone surrogate; it is written back escaped (valid UTF-8),
    not an internal error."""
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=all"])
    (b / "config.json").write_text((b / "config.json").read_text().replace('"a": 1', '"a": "\\ud800"'))
    r = shim(env, "create", "--bundle", str(b), "cid")
    assert r.returncode == 0, r.stderr
    raw = (b / "config.json").read_bytes()
    assert b"\\ud800" in raw and b"prestart" in raw
    assert json.loads(raw.decode("utf-8"))["x-vendor-field"]["a"] == "\ud800"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_create_never_blocks_on_or_reads_a_non_regular_config_json(env, kind):
    b = env["tmp"] / "bundle"
    b.mkdir()
    target = b / "config.json"
    if kind == "fifo":
        os.mkfifo(target)  # no writer: a blocking open would hang the shim forever
    elif kind == "dev-zero":
        target.symlink_to("/dev/zero")
    else:
        target.mkdir()
    r = shim(env, "create", "--bundle", str(b), "cid")
    assert r.returncode == 1
    assert r.stderr.strip() == f"gpuctk-runtime: error: {target}: cannot read OCI spec: not a regular file"
    assert not env["out"].exists()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_shim_never_blocks_on_a_non_regular_config_toml(env, kind):
    env["cfg"].unlink()
    if kind == "fifo":
        os.mkfifo(env["cfg"])
    else:
        env["cfg"].symlink_to("/dev/zero")
    b = bundle(env["tmp"], ["NVIDIA_VISIBLE_DEVICES=0"])
    r = shim(env, "create", "--bundle", str(b), "cid")
    assert r.returncode == 1
    assert r.stderr.strip().endswith(f"{env['cfg']}: cannot read config file: not a regular file")
