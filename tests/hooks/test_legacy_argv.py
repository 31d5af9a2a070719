"""The legacy prestart hook's nvidia-container-cli argv (upstream NVIDIA/nvidia-container-toolkit `cmd/nvidia-container-runtime-hook/main.go`): every config key and
environment combination, as tables over the pure builder; then the entry point as a process."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess

import pytest

from gpuctk.config import default_config
from gpuctk.hooks.legacy_argv import LegacyHookError, build_argv, cli_env, find_cli

ROOTFS = "/bundle/rootfs"
BOUNDING_ADMIN = {"bounding": ["CAP_SYS_ADMIN"]}


def spec(env: list[str], caps: object = None, mounts: list | None = None) -> dict:
    proc: dict = {"env": env}
    if caps is not None:
        proc["capabilities"] = caps
    return {"ociVersion": "1.0.2", "process": proc, "root": {"path": "rootfs"}, "mounts": mounts or []}


def cfg_with(**changes: object) -> dict:
    cfg = copy.deepcopy(default_config())
    for dotted, value in changes.items():
        keys = dotted.replace("__", ".").split(".")
        d = cfg
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return cfg


def argv(
    cfg: dict,
    env: list[str],
    *,
    pid: int | None = 42,
    debug: bool = False,
    caps: object = None,
    exists=lambda p: False,
    mounts: list | None = None,
) -> list[str] | None:
    return build_argv(
        cfg,
        spec(env, caps, mounts),
        cli_path="/usr/bin/nvidia-container-cli",
        rootfs=ROOTFS,
        pid=pid,
        hook_debug=debug,
        exists=exists,
    )


BASE_HEAD = [
    "/usr/bin/nvidia-container-cli",
    "--load-kmods",
    "configure",
    "--cuda-compat-mode=disabled",
    "--ldconfig=@/sbin/ldconfig",
]


def test_defaults():
    assert argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0,1"]) == [
        *BASE_HEAD,
        "--device=0,1",
        "--compute",
        "--utility",
        "--pid=42",
        ROOTFS,
    ]


@pytest.mark.parametrize(
    "env",
    [
        [],
        ["NVIDIA_VISIBLE_DEVICES=void"],
        ["NVIDIA_VISIBLE_DEVICES="],
        ["NVIDIA_VISIBLE_DEVICES=0,void"],
        ["OTHER=1"],
    ],
)
def test_no_gpu_requested(env):
    assert argv(default_config(), env) is None


def test_none_means_driver_without_device_flag():
    out = argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=none"])
    assert out is not None and not any(a.startswith("--device") for a in out)


def test_all_and_uuid():
    assert "--device=all" in (argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=all"]) or [])
    assert "--device=GPU-abc,MIG-def" in (
        argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=GPU-abc,MIG-def"]) or []
    )


def test_legacy_cuda_image_gets_all_devices_all_caps_and_require():
    out = argv(default_config(), ["CUDA_VERSION=11.8.0"])
    assert out is not None
    assert "--device=all" in out
    assert [
        a
        for a in out
        if a in ("--compute", "--compat32", "--graphics", "--utility", "--video", "--display", "--ngx")
    ] == ["--compute", "--compat32", "--graphics", "--utility", "--video", "--display", "--ngx"]
    assert "--require=cuda>=11.8" in out


@pytest.mark.parametrize(
    "key,value,flag",
    [
        ("nvidia-container-cli.root", "/run/nvidia/driver", "--root=/run/nvidia/driver"),
        ("nvidia-container-cli.debug", "/var/log/cli.log", "--debug=/var/log/cli.log"),
        ("nvidia-container-cli.ldcache", "/etc/ld.so.cache", "--ldcache=/etc/ld.so.cache"),
        ("nvidia-container-cli.user", "root:video", "--user=root:video"),
        ("nvidia-container-cli.no-pivot", True, "--no-pivot"),
        ("nvidia-container-cli.no-cgroups", True, "--no-cgroups"),
        ("nvidia-container-cli.ldconfig", "/usr/sbin/ldconfig", "--ldconfig=/usr/sbin/ldconfig"),
        ("features.disable-imex-channel-creation", True, "--no-create-imex-channels"),
    ],
)
def test_each_cli_key(key, value, flag):
    out = argv(cfg_with(**{key: value}), ["NVIDIA_VISIBLE_DEVICES=0"])
    assert out is not None and flag in out
    assert out.index(flag) < out.index("configure") or flag in (
        "--ldconfig=/usr/sbin/ldconfig",
        "--no-cgroups",
    )


def test_global_flag_order():
    cfg = cfg_with(
        **{
            "nvidia-container-cli.root": "/drv",
            "nvidia-container-cli.no-pivot": True,
            "nvidia-container-cli.debug": "/log",
            "nvidia-container-cli.ldcache": "/c",
            "nvidia-container-cli.user": "u",
            "features.disable-imex-channel-creation": True,
            "nvidia-container-cli.no-cgroups": True,
        }
    )
    out = argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0"])
    assert out == [
        "/usr/bin/nvidia-container-cli",
        "--root=/drv",
        "--load-kmods",
        "--no-create-imex-channels",
        "--no-pivot",
        "--debug=/log",
        "--ldcache=/c",
        "--user=u",
        "configure",
        "--cuda-compat-mode=disabled",
        "--ldconfig=@/sbin/ldconfig",
        "--no-cgroups",
        "--device=0",
        "--compute",
        "--utility",
        "--pid=42",
        ROOTFS,
    ]


def test_load_kmods_off_and_hook_debug_wins():
    out = argv(
        cfg_with(**{"nvidia-container-cli.load-kmods": False, "nvidia-container-cli.debug": "/log"}),
        ["NVIDIA_VISIBLE_DEVICES=0"],
        debug=True,
    )
    assert out is not None and "--load-kmods" not in out
    assert "--debug=/dev/stderr" in out and "--debug=/log" not in out


def test_ldconfig_real_normalised():
    out = argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0"], exists=lambda p: p == "/sbin/ldconfig.real")
    assert out is not None and "--ldconfig=@/sbin/ldconfig.real" in out


@pytest.mark.parametrize(
    "allow,mode,flag",
    [
        (None, "ldconfig", "--cuda-compat-mode=disabled"),
        (False, "mount", "--cuda-compat-mode=disabled"),
        (True, "ldconfig", "--cuda-compat-mode=ldconfig"),
        (True, "mount", "--cuda-compat-mode=mount"),
        (True, "hook", "--cuda-compat-mode=disabled"),
        (True, "disabled", "--cuda-compat-mode=disabled"),
        (True, "weird", None),
    ],
)
def test_cuda_compat_mode(allow, mode, flag):
    cfg = cfg_with(
        **{
            "features.allow-cuda-compat-libs-from-container": allow,
            "nvidia-container-runtime.modes.legacy.cuda-compat-mode": mode,
        }
    )
    out = argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0"]) or []
    got = [a for a in out if a.startswith("--cuda-compat-mode")]
    assert got == ([flag] if flag else [])


@pytest.mark.parametrize(
    "supported,env,expected",
    [
        ("compat32,compute,display,graphics,ngx,utility,video", None, ["--compute", "--utility"]),
        ("compat32,compute,display,graphics,ngx,utility,video", "", ["--compute", "--utility"]),
        (
            "compat32,compute,display,graphics,ngx,utility,video",
            "all",
            ["--compute", "--compat32", "--graphics", "--utility", "--video", "--display", "--ngx"],
        ),
        ("compat32,compute,display,graphics,ngx,utility,video", "video,graphics", ["--graphics", "--video"]),
        ("all", "ngx", ["--ngx"]),
        ("utility", None, ["--utility"]),
        ("utility,video", "all", ["--utility", "--video"]),
    ],
)
def test_capabilities(supported, env, expected):
    envs = ["NVIDIA_VISIBLE_DEVICES=0"] + ([f"NVIDIA_DRIVER_CAPABILITIES={env}"] if env is not None else [])
    out = argv(cfg_with(**{"supported-driver-capabilities": supported}), envs) or []
    assert [
        a for a in out if a[2:] in ("compute", "compat32", "graphics", "utility", "video", "display", "ngx")
    ] == expected


def test_unsupported_capability_is_an_error():
    with pytest.raises(LegacyHookError, match="unsupported capability 'video'"):
        argv(
            cfg_with(**{"supported-driver-capabilities": "utility,compute"}),
            ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=video"],
        )
    with pytest.raises(LegacyHookError, match="supported-driver-capabilities"):
        argv(cfg_with(**{"supported-driver-capabilities": "utility,bogus"}), ["NVIDIA_VISIBLE_DEVICES=0"])


def test_requirements_and_disable_require():
    env = [
        "NVIDIA_VISIBLE_DEVICES=0",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.0 brand=tesla",
        "NVIDIA_REQUIRE_ARCH=arch>=7.0",
        "NVIDIA_REQUIRE_JETPACK=csv-mounts=all",
    ]
    out = argv(default_config(), env) or []
    assert [a for a in out if a.startswith("--require")] == [
        "--require=arch>=7.0",
        "--require=cuda>=12.0 brand=tesla",
    ]
    assert not [
        a for a in argv(cfg_with(**{"disable-require": True}), env) or [] if a.startswith("--require")
    ]
    assert not [
        a
        for a in argv(default_config(), [*env, "NVIDIA_DISABLE_REQUIRE=true"]) or []
        if a.startswith("--require")
    ]


def test_mig_requires_privilege():
    env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all", "NVIDIA_MIG_MONITOR_DEVICES=0,1"]
    out = argv(default_config(), env, caps=BOUNDING_ADMIN) or []
    assert "--mig-config=all" in out and "--mig-monitor=0,1" in out
    with pytest.raises(LegacyHookError, match="cannot set MIG_CONFIG_DEVICES in non privileged container"):
        argv(default_config(), env)
    with pytest.raises(LegacyHookError, match="MIG_MONITOR_DEVICES"):
        argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_MONITOR_DEVICES=0"])
    # the pre-rc5 flat capability list counts too
    out = argv(default_config(), env, caps=["CAP_SYS_ADMIN"]) or []
    assert "--mig-config=all" in out


def test_imex_channels():
    out = argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=0,3"]) or []
    assert "--imex-channel=0,3" in out
    out = argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=all"]) or []
    assert not [a for a in out if a.startswith("--imex")]
    out = (
        argv(
            cfg_with(**{"features.ignore-imex-channel-requests": True}),
            ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=1"],
        )
        or []
    )
    assert not [a for a in out if a.startswith("--imex")]


def test_unprivileged_env_refused_when_not_accepted():
    cfg = cfg_with(**{"accept-nvidia-visible-devices-envvar-when-unprivileged": False})
    assert argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0"]) is None
    assert "--device=0" in (argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0"], caps=BOUNDING_ADMIN) or [])


def test_volume_mount_requests():
    mounts = [
        {"source": "/dev/null", "destination": "/var/run/nvidia-container-devices/1"},
        {"source": "/dev/null", "destination": "/var/run/nvidia-container-devices/imex/5"},
    ]
    cfg = cfg_with(**{"accept-nvidia-visible-devices-as-volume-mounts": True})
    out = argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0"], mounts=mounts) or []
    assert "--device=1" in out and "--imex-channel=5" in out


def test_swarm_resource():
    cfg = cfg_with(**{"swarm-resource": "DOCKER_RESOURCE_GPUS,DOCKER_RESOURCE_GPUS_ADDITIONAL"})
    out = (
        argv(cfg, ["NVIDIA_VISIBLE_DEVICES=0", "DOCKER_RESOURCE_GPUS=1", "DOCKER_RESOURCE_GPUS_ADDITIONAL=2"])
        or []
    )
    assert "--device=1,2" in out


def test_no_pid():
    out = argv(default_config(), ["NVIDIA_VISIBLE_DEVICES=0"], pid=None) or []
    assert not [a for a in out if a.startswith("--pid")] and out[-1] == ROOTFS


@pytest.mark.parametrize(
    "mode,env,ok",
    [
        ("legacy", "0", True),
        ("auto", "0", True),
        ("cdi", "0", False),
        ("csv", "0", False),
        ("auto", "nvidia.com/gpu=0", False),
    ],
)
def test_mode_detection(mode, env, ok):
    cfg = cfg_with(**{"nvidia-container-runtime.mode": mode})
    if ok:
        assert argv(cfg, [f"NVIDIA_VISIBLE_DEVICES={env}"]) is not None
    else:
        with pytest.raises(LegacyHookError, match="directly"):
            argv(cfg, [f"NVIDIA_VISIBLE_DEVICES={env}"])
        cfg["nvidia-container-runtime-hook"]["skip-mode-detection"] = True
        assert argv(cfg, [f"NVIDIA_VISIBLE_DEVICES={env}"]) is not None


def test_find_cli_order():
    have = {"/drv/usr/bin/nvidia-container-cli", "/usr/bin/nvidia-container-cli"}
    assert (
        find_cli(cfg_with(**{"nvidia-container-cli.root": "/drv"}), "/usr/bin", have.__contains__)
        == "/drv/usr/bin/nvidia-container-cli"
    )
    assert find_cli(default_config(), "/usr/bin", have.__contains__) == "/usr/bin/nvidia-container-cli"
    assert (
        find_cli(cfg_with(**{"nvidia-container-cli.path": "/opt/cli"}), "/usr/bin", have.__contains__) is None
    )
    assert find_cli(default_config(), "/nowhere", have.__contains__) is None


def test_cli_env_strips_loader_vars():
    env = cli_env(
        {"PATH": "/bin", "LD_PRELOAD": "/x.so", "LD_AUDIT": "a"},
        cfg_with(**{"nvidia-container-cli.environment": ["FOO=bar", "LD_LIBRARY_PATH=/evil"]}),
    )
    assert env == {"PATH": "/bin", "FOO": "bar"}


# ------------------------------------------------------------------ the entry point as a process
def _stub_cli(d) -> str:
    path = os.path.join(d, "nvidia-container-cli")
    with open(path, "w") as f:
        f.write(
            '#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "$(dirname "$0")/argv.txt"\nenv > "$(dirname "$0")/env.txt"\n'
        )
    os.chmod(path, 0o755 | stat.S_IXUSR)
    return path


def _legacy(tmp_path, env_list, *, config_text=None, path_dirs=None, args=("prestart",), extra_env=None):
    from support.tools import venv_script

    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec(env_list)))
    env = {"PATH": ":".join([*(path_dirs or []), "/usr/bin:/bin"])}
    if config_text is not None:
        cfgp = tmp_path / "config.toml"
        cfgp.write_text(config_text)
        env["NVIDIA_CTK_CONFIG_FILE_PATH"] = str(cfgp)
    env.update(extra_env or {})
    return subprocess.run(
        [venv_script("gpuctk-runtime-hook"), *args],
        input=json.dumps({"bundle": str(bundle), "pid": 7}),
        capture_output=True,
        text=True,
        env=env,
    )


def test_prestart_execs_cli(tmp_path):
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    _stub_cli(str(stub_dir))
    p = _legacy(
        tmp_path,
        ["NVIDIA_VISIBLE_DEVICES=0"],
        config_text=f'[nvidia-container-cli]\npath = "{stub_dir}/nvidia-container-cli"\n',
        extra_env={"LD_PRELOAD": "/nonexistent-gpuctk.so"},
    )
    assert p.returncode == 0, p.stderr
    got = (stub_dir / "argv.txt").read_text().splitlines()
    assert got == [
        str(stub_dir / "nvidia-container-cli"),
        "--load-kmods",
        "configure",
        "--cuda-compat-mode=disabled",
        "--ldconfig=@/sbin/ldconfig" + (".real" if os.path.exists("/sbin/ldconfig.real") else ""),
        "--device=0",
        "--compute",
        "--utility",
        "--pid=7",
        str(tmp_path / "bundle" / "rootfs"),
    ]
    assert "LD_PRELOAD" not in (stub_dir / "env.txt").read_text()


@pytest.mark.parametrize(
    "stdin",
    [b"[" * 200_000 + b"]" * 200_000, b'{"bundle": "/x\\u0000y"}', b"\xff\xfe", b"0" * (5 << 20)],
    ids=["deep-nesting", "nul-in-bundle", "not-utf8", "huge"],
)
def test_legacy_hook_hostile_state_is_one_line_error(tmp_path, stdin):
    from support.tools import venv_script

    p = subprocess.run(
        [venv_script("gpuctk-runtime-hook"), "prestart"],
        input=stdin,
        capture_output=True,
        env={"PATH": "/bin"},
    )
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_legacy_hook_bundle_config_fifo_does_not_block(tmp_path):
    from support.tools import venv_script

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.mkfifo(bundle / "config.json")
    p = subprocess.run(
        [venv_script("gpuctk-runtime-hook"), "prestart"],
        input=json.dumps({"bundle": str(bundle)}).encode(),
        capture_output=True,
        env={"PATH": "/bin"},
        timeout=30,
    )
    assert p.returncode == 1 and b"not a regular file" in p.stderr, p.stderr


def test_prestart_not_a_gpu_container(tmp_path):
    p = _legacy(tmp_path, ["PATH=/bin"], config_text="")
    assert p.returncode == 0 and p.stderr == ""


def test_prestart_cli_missing_says_how_to_switch(tmp_path):
    p = _legacy(tmp_path, ["NVIDIA_VISIBLE_DEVICES=all"], config_text="", path_dirs=[str(tmp_path / "empty")])
    assert p.returncode == 1
    assert "nvidia-container-cli not found" in p.stderr and "mode" in p.stderr and "cdi" in p.stderr
    assert p.stderr.count("\n") == 1


def test_poststart_poststop_noop_and_usage(tmp_path):
    assert _legacy(tmp_path, [], args=("poststart",)).returncode == 0
    assert _legacy(tmp_path, [], args=("poststop",)).returncode == 0
    assert _legacy(tmp_path, [], args=("bogus",)).returncode == 2
    assert _legacy(tmp_path, [], args=("--nope", "prestart")).returncode == 2


def test_explicit_config_must_exist(tmp_path):
    p = _legacy(
        tmp_path, ["NVIDIA_VISIBLE_DEVICES=0"], args=("--config", str(tmp_path / "missing.toml"), "prestart")
    )
    assert p.returncode == 1 and "missing.toml" in p.stderr
