"""Golden before/after files for every engine, config version and option combination,
plus the lifecycle every case must satisfy: a second run changes nothing (byte-identical)
and --uninstall leaves a config equivalent to the original.

Regenerate the goldens with GPUCTK_UPDATE_GOLDEN=1 (then review the diff).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from engines_fakefs import FakeFS
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.engines import containerd, crio, docker
from gpuctk.engines.model import ConfigureOptions
from support.golden import UPDATE

DATA = Path(__file__).resolve().parents[1] / "data" / "engines"
INPUTS = DATA / "inputs"
GOLDEN = DATA / "golden"

CTD = "/etc/containerd/config.toml"
CTD_DROP = "/etc/containerd/conf.d/99-nvidia.toml"
CRIO = "/etc/crio/crio.conf"
CRIO_DROP = "/etc/crio/crio.conf.d/99-nvidia.toml"
HOOK = "/usr/share/containers/oci/hooks.d/oci-nvidia-hook.json"
DOCKER = "/etc/docker/daemon.json"
MODULES: dict[str, Any] = {"containerd": containerd, "crio": crio, "docker": docker}


def _opts(engine: str, **kw: Any) -> ConfigureOptions:
    base: dict[str, Any] = {
        "containerd": {"config": CTD, "drop_in": CTD_DROP, "runsc_config": "/etc/containerd/runsc.toml"},
        "crio": {"config": CRIO, "drop_in": CRIO_DROP, "oci_hook_file": HOOK},
        "docker": {"config": DOCKER, "drop_in": ""},
    }[engine]
    return ConfigureOptions(engine=engine, **{**base, **kw})


# case id -> (input file in inputs/ or None for "no config yet", options)
CASES: dict[str, tuple[str | None, ConfigureOptions]] = {
    # containerd, version 2, a hand-written config with comments
    "ctd-v2-dropin": ("containerd-v2-comments.toml", _opts("containerd", engine_version=(1, 6, 20))),
    "ctd-v2-dropin-default-cdi": (
        "containerd-v2-comments.toml",
        _opts("containerd", set_as_default=True, enable_cdi=True, engine_version=(1, 7, 12)),
    ),
    "ctd-v2-dropin-specdirs": (
        "containerd-v2-comments.toml",
        _opts(
            "containerd", enable_cdi=True, cdi_spec_dirs=["/etc/cdi", "/run/cdi"], engine_version=(1, 7, 12)
        ),
    ),
    "ctd-v2-inplace-default-cdi": (
        "containerd-v2-comments.toml",
        _opts("containerd", drop_in="", set_as_default=True, enable_cdi=True, engine_version=(1, 7, 12)),
    ),
    "ctd-v2-runsc": (
        "containerd-v2-comments.toml",
        _opts(
            "containerd", runtime_name="nvidia-gvisor", low_level_runtime="runsc", engine_version=(1, 7, 12)
        ),
    ),
    "ctd-v2-runsc-inplace": (
        "containerd-v2-comments.toml",
        _opts("containerd", drop_in="", runtime_name="nvidia-gvisor", low_level_runtime="runsc"),
    ),
    # containerd, version 2 with existing imports and crun as default runtime
    "ctd-v2-imports-default": (
        "containerd-v2-imports.toml",
        _opts("containerd", set_as_default=True, engine_version=(1, 7, 2)),
    ),
    "ctd-v2-imports-inplace": (
        "containerd-v2-imports.toml",
        _opts(
            "containerd",
            drop_in="",
            runtime_name="nvidia-cdi",
            runtime_path="/usr/local/nvidia/toolkit/nvidia-container-runtime.cdi",
        ),
    ),
    # containerd, version 1: no imports, edited in place
    "ctd-v1-default-cdi": (
        "containerd-v1.toml",
        _opts("containerd", set_as_default=True, enable_cdi=True, engine_version=(1, 7, 0)),
    ),
    # containerd, version 3 (containerd 2.x)
    "ctd-v3-dropin-default-cdi": (
        "containerd-v3.toml",
        _opts("containerd", set_as_default=True, enable_cdi=True, engine_version=(2, 0, 1)),
    ),
    "ctd-v3-dropin-minimal-2.1": (
        "containerd-v3.toml",
        _opts("containerd", set_as_default=True, enable_cdi=True, engine_version=(2, 1, 0)),
    ),
    "ctd-v3-inplace": ("containerd-v3.toml", _opts("containerd", drop_in="", engine_version=(2, 0, 1))),
    # containerd without a config file yet
    "ctd-none-1.6": (None, _opts("containerd", set_as_default=True, engine_version=(1, 6, 20))),
    "ctd-none-2.0": (None, _opts("containerd", enable_cdi=True, engine_version=(2, 0, 1))),
    "ctd-none-inplace": (None, _opts("containerd", drop_in="", set_as_default=True)),
    # CRI-O
    "crio-dropin": ("crio.conf", _opts("crio")),
    "crio-dropin-default": ("crio.conf", _opts("crio", set_as_default=True, cdi_spec_dirs=["/var/run/cdi"])),
    "crio-inplace-default": ("crio.conf", _opts("crio", drop_in="", set_as_default=True)),
    "crio-oci-hook": (
        "crio.conf",
        _opts(
            "crio",
            config_mode="oci-hook",
            hook_path="/usr/local/nvidia/toolkit/nvidia-container-runtime-hook",
        ),
    ),
    # Docker
    "docker-features-default-cdi": ("daemon.json", _opts("docker", set_as_default=True, enable_cdi=True)),
    "docker-runtime-only": ("daemon.json", _opts("docker")),
    "docker-none-cdi": (None, _opts("docker", enable_cdi=True)),
}


def _fs(case: str) -> tuple[FakeFS, ConfigureOptions, dict[str, str]]:
    name, opts = CASES[case]
    files = {}
    if name is not None:
        files[opts.config] = (INPUTS / name).read_text()
    fs = FakeFS(files)
    return fs, opts, dict(files)


def _configure(fs: FakeFS, opts: ConfigureOptions) -> None:
    fs.apply(MODULES[opts.engine].plan_configure(opts, fs.read))


def _uninstall(fs: FakeFS, opts: ConfigureOptions) -> None:
    fs.apply(MODULES[opts.engine].plan_uninstall(opts, fs.read, fs.prior))


def _parse(path: str, text: str) -> Any:
    return json.loads(text) if path.endswith(".json") else tomllib.loads(text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    fs, opts, before = _fs(case)
    _configure(fs, opts)
    changed = {p: t for p, t in fs.live().items() if before.get(p) != t}
    assert changed, "configure changed nothing"
    gdir = GOLDEN / case
    if UPDATE:
        gdir.mkdir(parents=True, exist_ok=True)
        for old in gdir.iterdir():
            old.unlink()
        for path, text in changed.items():
            (gdir / os.path.basename(path)).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(gdir.iterdir())}
    got = {os.path.basename(p): t for p, t in changed.items()}
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], f"{case}/{name} differs from its golden file"
    for path, text in changed.items():
        _parse(path, text)  # every output parses


@pytest.mark.parametrize("case", sorted(CASES))
def test_second_run_is_byte_identical_noop(case: str) -> None:
    fs, opts, _ = _fs(case)
    _configure(fs, opts)
    after_first = dict(fs.files)
    plan = MODULES[opts.engine].plan_configure(opts, fs.read)
    assert [c.path for c in plan.changes if c.changed] == []
    fs.apply(plan)
    assert fs.files == after_first  # no new backups either


@pytest.mark.parametrize("case", sorted(CASES))
def test_uninstall_restores_equivalent_config(case: str) -> None:
    fs, opts, before = _fs(case)
    _configure(fs, opts)
    _uninstall(fs, opts)
    live = fs.live()
    assert sorted(live) == sorted(before), "uninstall left or removed files"
    for path, text in before.items():
        assert _parse(path, live[path]) == _parse(path, text)
    # and uninstall is idempotent too
    plan = MODULES[opts.engine].plan_uninstall(opts, fs.read, fs.prior)
    assert not any(c.changed for c in plan.changes)


def test_comments_survive_in_place_edit() -> None:
    fs, opts, _ = _fs("ctd-v2-inplace-default-cdi")
    _configure(fs, opts)
    text = fs.files[CTD]
    for line in (
        "# containerd config for a GPU node (kept by hand)",
        "# pause image mirrored locally",
        'address = "/run/containerd/containerd.sock"  # the CRI socket',
        "SystemdCgroup = true  # cgroup v2 host",
    ):
        assert line in text


def test_runtime_entry_copies_default_runtime_then_sets_binary() -> None:
    fs, opts, _ = _fs("ctd-v2-imports-default")
    _configure(fs, opts)
    drop = tomllib.loads(fs.files[CTD_DROP])
    cri = drop["plugins"]["io.containerd.grpc.v1.cri"]
    entry = cri["containerd"]["runtimes"]["nvidia"]
    assert entry == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True},
    }
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    main = tomllib.loads(fs.files[CTD])
    assert main["imports"] == ["/etc/containerd/site.d/*.toml", "/etc/containerd/conf.d/*.toml"]


def test_containerd_21_drop_in_holds_only_gpuctk_settings() -> None:
    fs, opts, _ = _fs("ctd-v3-dropin-minimal-2.1")
    _configure(fs, opts)
    cri = tomllib.loads(fs.files[CTD_DROP])["plugins"]["io.containerd.cri.v1.runtime"]
    assert cri == {
        "enable_cdi": True,
        "containerd": {
            "default_runtime_name": "nvidia",
            "runtimes": {
                "nvidia": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": {"SystemdCgroup": True, "BinaryName": "/usr/bin/nvidia-container-runtime"},
                }
            },
        },
    }


def test_runsc_variant_writes_shim_entry_and_runsc_toml() -> None:
    fs, opts, _ = _fs("ctd-v2-runsc")
    _configure(fs, opts)
    entry = tomllib.loads(fs.files[CTD_DROP])["plugins"]["io.containerd.grpc.v1.cri"]["containerd"][
        "runtimes"
    ]["nvidia-gvisor"]
    assert entry["runtime_type"] == "io.containerd.runsc.v1"
    assert entry["options"] == {
        "TypeUrl": "io.containerd.runsc.v1.options",
        "ConfigPath": "/etc/containerd/runsc.toml",
    }
    runsc = tomllib.loads(fs.files["/etc/containerd/runsc.toml"])
    assert runsc == {"binary_name": "/usr/bin/nvidia-container-runtime", "runsc_config": {"nvproxy": "true"}}


def test_docker_merges_existing_features() -> None:
    fs, opts, _ = _fs("docker-features-default-cdi")
    _configure(fs, opts)
    data = json.loads(fs.files[DOCKER])
    assert data["features"] == {"buildkit": True, "containerd-snapshotter": False, "cdi": True}
    assert data["default-runtime"] == "nvidia"
    assert data["runtimes"]["nvidia"] == {"path": "/usr/bin/nvidia-container-runtime", "args": []}
    assert data["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert fs.files[DOCKER].startswith('{\n  "log-driver"')  # key order and 2-space indent kept


def test_crio_entry_copies_default_runtime() -> None:
    fs, opts, _ = _fs("crio-dropin-default")
    _configure(fs, opts)
    rt = tomllib.loads(fs.files[CRIO_DROP])["crio"]["runtime"]
    assert rt["default_runtime"] == "nvidia"
    assert rt["cdi_spec_dirs"] == ["/var/run/cdi"]
    assert rt["runtimes"]["nvidia"] == {
        "runtime_path": "/usr/bin/nvidia-container-runtime",
        "runtime_type": "oci",
        "runtime_root": "/run/crun",
        "monitor_path": "/usr/libexec/crio/conmon",
        "allowed_annotations": ["io.containers.trace-syscall"],
    }


def test_crio_oci_hook_shape() -> None:
    fs, opts, _ = _fs("crio-oci-hook")
    _configure(fs, opts)
    hook = json.loads(fs.files[HOOK])
    assert hook == {
        "version": "1.0.0",
        "hook": {
            "path": "/usr/local/nvidia/toolkit/nvidia-container-runtime-hook",
            "args": ["nvidia-container-runtime-hook", "prestart"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/nvidia/toolkit"
            ],
        },
        "when": {"always": True, "commands": [".*"]},
        "stages": ["prestart"],
    }


@pytest.mark.parametrize("engine,config,drop_in", [("containerd", CTD, CTD_DROP), ("crio", CRIO, CRIO_DROP)])
def test_three_runtimes_one_call_at_a_time(engine: str, config: str, drop_in: str) -> None:
    """The installer's nvidia / nvidia-cdi / nvidia-legacy set accumulates in one drop-in."""
    src = (INPUTS / ("containerd-v2-comments.toml" if engine == "containerd" else "crio.conf")).read_text()
    fs = FakeFS({config: src})
    base = _opts(engine, engine_version=(1, 7, 12)) if engine == "containerd" else _opts(engine)
    names = {"nvidia": "", "nvidia-cdi": ".cdi", "nvidia-legacy": ".legacy"}
    for name, suffix in names.items():
        _configure(
            fs,
            replace(
                base,
                runtime_name=name,
                runtime_path=f"/opt/tk/nvidia-container-runtime{suffix}",
                set_as_default=name == "nvidia",
            ),
        )
    drop = tomllib.loads(fs.files[drop_in])
    if engine == "containerd":
        runtimes = drop["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    else:
        runtimes = drop["crio"]["runtime"]["runtimes"]
    assert set(names) <= set(runtimes)
    _uninstall(fs, replace(base, runtime_name="nvidia-cdi"))
    assert drop_in in fs.files
    for name in ("nvidia", "nvidia-legacy"):
        _uninstall(fs, replace(base, runtime_name=name))
    assert drop_in not in fs.files
    assert _parse(config, fs.files[config]) == _parse(config, src)


def test_user_tuning_of_existing_entry_is_kept() -> None:
    src = (INPUTS / "containerd-v2-comments.toml").read_text() + (
        '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
        '          runtime_type = "io.containerd.runc.v2"\n'
        '          pod_annotations = ["nvidia.cdi.k8s.io/*"]  # tuned by hand\n'
        '          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n'
        '            BinaryName = "/old/nvidia-container-runtime"\n'
    )
    fs = FakeFS({CTD: src})
    _configure(fs, _opts("containerd", drop_in=""))
    assert "# tuned by hand" in fs.files[CTD]
    entry = tomllib.loads(fs.files[CTD])["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][
        "nvidia"
    ]
    assert entry["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime"}
    assert entry["pod_annotations"] == ["nvidia.cdi.k8s.io/*"]


_INPUT_FOR = {
    "containerd": [
        None,
        "containerd-v1.toml",
        "containerd-v2-comments.toml",
        "containerd-v2-imports.toml",
        "containerd-v3.toml",
    ],
    "crio": [None, "crio.conf"],
    "docker": [None, "daemon.json"],
}


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_option_combination_is_idempotent_and_reversible(data: Any) -> None:
    engine = data.draw(st.sampled_from(sorted(_INPUT_FOR)))
    name = data.draw(st.sampled_from(_INPUT_FOR[engine]))
    kw: dict[str, Any] = {
        "runtime_name": data.draw(st.sampled_from(["nvidia", "nvidia-cdi", "gpu.runtime", "nvidia_x"])),
        "set_as_default": data.draw(st.booleans()),
        "enable_cdi": data.draw(st.booleans()),
        "cdi_spec_dirs": data.draw(st.sampled_from([[], ["/etc/cdi"], ["/var/run/cdi", "/opt/cdi"]])),
    }
    if engine != "docker":
        kw["drop_in"] = data.draw(st.sampled_from(["", CTD_DROP if engine == "containerd" else CRIO_DROP]))
    if engine == "containerd":
        kw["engine_version"] = data.draw(
            st.sampled_from([None, (1, 6, 20), (1, 7, 12), (2, 0, 1), (2, 1, 0)])
        )
        kw["low_level_runtime"] = data.draw(st.sampled_from(["", "runsc"]))
    if engine == "crio":
        kw["config_mode"] = data.draw(st.sampled_from(["config-file", "oci-hook"]))
    opts = _opts(engine, **kw)
    before = {opts.config: (INPUTS / name).read_text()} if name else {}
    fs = FakeFS(before)
    _configure(fs, opts)
    snapshot = dict(fs.files)
    _configure(fs, opts)
    assert fs.files == snapshot
    _uninstall(fs, opts)
    live = fs.live()
    assert sorted(live) == sorted(before)
    for path, text in before.items():
        assert _parse(path, live[path]) == _parse(path, text)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_several_runtimes_then_uninstall_in_any_order(data: Any) -> None:
    engine = data.draw(st.sampled_from(sorted(_INPUT_FOR)))
    name = data.draw(st.sampled_from(_INPUT_FOR[engine]))
    runtimes = data.draw(
        st.lists(
            st.sampled_from(["nvidia", "nvidia-cdi", "nvidia-legacy"]), min_size=1, max_size=3, unique=True
        )
    )
    kw: dict[str, Any] = {"enable_cdi": data.draw(st.booleans())}
    if engine != "docker":
        kw["drop_in"] = data.draw(st.sampled_from(["", CTD_DROP if engine == "containerd" else CRIO_DROP]))
    if engine == "containerd":
        kw["engine_version"] = data.draw(st.sampled_from([(1, 6, 20), (2, 0, 1), (2, 1, 0)]))
    base = _opts(engine, **kw)
    before = {base.config: (INPUTS / name).read_text()} if name else {}
    fs = FakeFS(before)
    for i, rt in enumerate(runtimes):
        _configure(
            fs,
            replace(
                base, runtime_name=rt, runtime_path=f"/tk/nvidia-container-runtime{i}", set_as_default=i == 0
            ),
        )
    for rt in data.draw(st.permutations(runtimes)):
        _uninstall(fs, replace(base, runtime_name=rt))
    live = fs.live()
    assert sorted(live) == sorted(before)
    for path, text in before.items():
        assert _parse(path, live[path]) == _parse(path, text)
