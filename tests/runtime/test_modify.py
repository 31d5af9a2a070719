"""Modifier stacks per mode (upstream `internal/modifier/`) with the outside world (registry, generator, /proc) swapped out."""

from __future__ import annotations

import copy

import pytest

from gpuctk.config.load import default_config_typed
from gpuctk.runtime.host import Host, ModifyError
from gpuctk.runtime.log import Logger
from gpuctk.runtime.modify import MIXED_VENDOR_ERROR, cdi_device_names, modify_spec, parse_jit_requests
from gpuctk.runtime.platform import StaticProbes

NV_HOOK = {
    "path": "/usr/bin/nvidia-container-runtime-hook",
    "args": ["nvidia-container-runtime-hook", "prestart"],
}


SAFE_ENV = ["PATH=/host/bin"]


class FakeHost(Host):
    def __init__(self, cfg, probes=None):
        super().__init__(cfg, probes or StaticProbes(nvml=True))
        self.calls: list[tuple] = []
        self.gpus: list[dict] = []
        self.csv_all: list[tuple[str, bool]] = []  # (mode, csv_all) of every jit_spec call

    def inject_registry_devices(self, oci_spec, names, spec_dirs):
        self.calls.append(("registry", list(names), list(spec_dirs)))
        oci_spec["process"]["env"].append("INJECTED=" + ",".join(names))
        return names

    def jit_spec(self, mode, ids, csv_all=False):
        self.calls.append(("jit", mode, list(ids)))
        self.csv_all.append((mode, csv_all))
        return {"cdiVersion": "0.5.0", "kind": "runtime.nvidia.com/gpu", "devices": []}

    def apply_cdi_spec(self, oci_spec, cdi_spec, source):
        self.calls.append(("apply", source))
        oci_spec["process"]["env"].append("JIT=" + source)
        return []

    def apply_edits(self, oci_spec, edits):
        self.calls.append(("edits", copy.deepcopy(edits)))
        oci_spec.setdefault("x-edits", []).append(edits)

    def legacy_hook_path(self):
        return "/opt/gpuctk/bin/gpuctk-runtime-hook"

    def hook_env(self):
        return list(SAFE_ENV)

    def cdi_hook_path(self):
        return "/usr/bin/nvidia-ctk"

    def gpu_information(self):
        return self.gpus

    def drm_nodes(self, bus_id):
        return {"0000:3b:00.0": ["/dev/dri/card1", "/dev/dri/renderD128"]}.get(bus_id, [])

    def driver_version(self):
        return "550.54.15"

    def cuda_properties(self):
        return {"cuda": "12.4", "arch": "8.7"}

    def runsc_ready(self, oci_spec):
        self.calls.append(("gvisor",))
        oci_spec["x-runsc"] = True
        return ["checked"]


def spec(env=(), annotations=None, hooks=None, privileged=False):
    s = {
        "ociVersion": "1.0.2",
        "process": {
            "env": ["PATH=/bin", *env],
            "capabilities": {"bounding": ["CAP_SYS_ADMIN"] if privileged else []},
        },
        "root": {"path": "rootfs"},
        "x-unknown": {"keep": [1, 2]},
    }
    if annotations:
        s["annotations"] = annotations
    if hooks is not None:
        s["hooks"] = copy.deepcopy(hooks)
    return s


def run(s, mode="auto", probes=None, sandbox=None):
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = mode
    if sandbox is not None:
        cfg["nvidia-container-runtime"]["sandbox"] = sandbox
    host = FakeHost(cfg, probes)
    result = modify_spec(s, cfg, host, Logger())
    return result, host


# ------------------------------------------------------------------ pass-through
@pytest.mark.parametrize("mode", ["auto", "cdi", "jit-cdi", "legacy", "csv"])
@pytest.mark.parametrize("env", [[], ["NVIDIA_VISIBLE_DEVICES=void"], ["NVIDIA_VISIBLE_DEVICES="]])
def test_no_request_leaves_spec_untouched(mode, env):
    s = spec(env, hooks={"prestart": [NV_HOOK]})
    before = copy.deepcopy(s)
    result, host = run(s, mode)
    assert result is None
    assert s == before
    assert host.calls == []


def test_annotations_are_ignored_outside_cdi_mode():
    s = spec(annotations={"cdi.k8s.io/x": "nvidia.com/gpu=0"})
    before = copy.deepcopy(s)
    assert run(s, "legacy")[0] is None
    assert run(s, "jit-cdi")[0] is None
    assert s == before
    result, host = run(s, "cdi")
    assert result == "cdi"
    assert host.calls[0][:2] == ("registry", ["nvidia.com/gpu=0"])


# ------------------------------------------------------------------ cdi
def test_cdi_mode_qualifies_with_default_kind_and_removes_nvidia_hooks():
    s = spec(
        ["NVIDIA_VISIBLE_DEVICES=0,GPU-abc,0,example.com/net=eth0"],
        hooks={"prestart": [NV_HOOK, {"path": "/x"}]},
    )
    result, host = run(s, "cdi")
    assert result == "cdi"
    assert host.calls == [
        (
            "registry",
            ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-abc", "example.com/net=eth0"],
            ["/etc/cdi", "/var/run/cdi"],
        )
    ]
    assert s["hooks"]["prestart"] == [{"path": "/x", "env": SAFE_ENV}]
    assert s["x-unknown"] == {"keep": [1, 2]}


def test_cdi_mode_custom_default_kind_and_spec_dirs():
    s = spec(["NVIDIA_VISIBLE_DEVICES=all"])
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = "cdi"
    cfg["nvidia-container-runtime"]["modes"]["cdi"]["default-kind"] = "example.com/gpu"
    cfg["nvidia-container-runtime"]["modes"]["cdi"]["spec-dirs"] = ["/tmp/specs"]
    host = FakeHost(cfg)
    modify_spec(s, cfg, host, Logger())
    assert host.calls == [("registry", ["example.com/gpu=all"], ["/tmp/specs"])]


def test_auto_with_cdi_names_uses_registry():
    s = spec(["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all"])
    result, host = run(s, "auto", StaticProbes(tegra=True))
    assert result == "cdi"
    assert host.calls[0][0] == "registry"


def test_mixing_runtime_nvidia_com_with_other_names_is_an_error():
    s = spec(["NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0,nvidia.com/gpu=1"])
    before = copy.deepcopy(s)
    with pytest.raises(ModifyError) as exc:
        run(s, "cdi")
    assert str(exc.value) == MIXED_VENDOR_ERROR
    assert s["process"] == before["process"]


def test_runtime_nvidia_com_names_are_generated_in_cdi_mode():
    s = spec(
        [
            "NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0,runtime.nvidia.com/gpu=GPU-1",
            "NVIDIA_GDS=enabled",
            "NVIDIA_IMEX_CHANNELS=3",
        ]
    )
    result, host = run(s, "auto")
    assert result == "cdi"
    jit = [c for c in host.calls if c[0] == "jit"]
    assert jit == [("jit", "auto", ["0", "GPU-1"]), ("jit", "gds", []), ("jit", "imex", ["3"])]


def test_jit_cdi_mode_qualifies_with_runtime_kind():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0,1"])
    result, host = run(s, "jit-cdi")
    assert result == "jit-cdi"
    assert host.calls[0] == ("jit", "auto", ["0", "1"])


def test_jit_none_and_all():
    assert run(spec(["NVIDIA_VISIBLE_DEVICES=none"]), "jit-cdi")[1].calls[0] == ("jit", "auto", ["none"])
    assert run(spec(["NVIDIA_VISIBLE_DEVICES=all"]), "auto")[1].calls[0] == ("jit", "auto", ["all"])


def test_cdi_names_helpers():
    assert cdi_device_names(["0", "", "0", "a.com/b=c"], "nvidia.com/gpu") == [
        "nvidia.com/gpu=0",
        "nvidia.com/gpu=none",
        "a.com/b=c",
    ]
    assert parse_jit_requests(
        [
            "runtime.nvidia.com/gpu=0",
            "mode=gds",
            "mode=imex,id=1",
            "runtime.nvidia.com/gpu=1",
            "mode=imex,id=2",
        ]
    ) == [("auto", ["0", "1"]), ("gds", []), ("imex", ["1", "2"])]


# ------------------------------------------------------------------ legacy
def test_legacy_adds_prestart_hook_once():
    s = spec(["NVIDIA_VISIBLE_DEVICES=all"], hooks={"prestart": [{"path": "/other"}]})
    result, _ = run(s, "legacy")
    assert result == "legacy"
    assert s["hooks"]["prestart"] == [
        {"path": "/other", "env": SAFE_ENV},
        {
            "path": "/opt/gpuctk/bin/gpuctk-runtime-hook",
            "args": ["gpuctk-runtime-hook", "prestart"],
            "env": SAFE_ENV,
        },
    ]
    run(s, "legacy")
    assert len(s["hooks"]["prestart"]) == 2


def test_legacy_keeps_existing_nvidia_hook():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"], hooks={"prestart": [NV_HOOK]})
    run(s, "legacy")
    assert s["hooks"]["prestart"] == [{**NV_HOOK, "env": SAFE_ENV}]


def test_legacy_creates_hooks_section():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"])
    run(s, "legacy")
    assert s["hooks"] == {
        "prestart": [
            {
                "path": "/opt/gpuctk/bin/gpuctk-runtime-hook",
                "args": ["gpuctk-runtime-hook", "prestart"],
                "env": SAFE_ENV,
            }
        ]
    }


def test_legacy_graphics_adds_drm_nodes_of_selected_gpus():
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = "legacy"
    host = FakeHost(cfg)
    host.gpus = [
        {"uuid": "GPU-a", "bus_id": "0000:3B:00.0", "minor": "0"},
        {"uuid": "GPU-b", "bus_id": "0000:86:00.0", "minor": "1"},
    ]
    s = spec(["NVIDIA_VISIBLE_DEVICES=GPU-a", "NVIDIA_DRIVER_CAPABILITIES=graphics,compute"])
    modify_spec(s, cfg, host, Logger())
    edits = [c[1] for c in host.calls if c[0] == "edits"]
    assert edits[0]["deviceNodes"] == [{"path": "/dev/dri/card1"}, {"path": "/dev/dri/renderD128"}]
    assert edits[0]["hooks"][0]["args"] == [
        "nvidia-ctk",
        "hook",
        "create-symlinks",
        "--link=../card1::/dev/dri/by-path/pci-0000:3b:00.0-card",
        "--link=../renderD128::/dev/dri/by-path/pci-0000:3b:00.0-render",
    ]
    s2 = spec(["NVIDIA_VISIBLE_DEVICES=GPU-a"])  # no graphics capability
    host.calls.clear()
    modify_spec(s2, cfg, host, Logger())
    assert not [c for c in host.calls if c[0] == "edits"]


def test_legacy_feature_gated_and_compat_hook():
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = "legacy"
    cfg["nvidia-container-runtime"]["modes"]["legacy"]["cuda-compat-mode"] = "hook"
    host = FakeHost(cfg)
    s = spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MOFED=enabled", "NVIDIA_GDS=disabled"])
    modify_spec(s, cfg, host, Logger())
    assert ("jit", "mofed", []) in host.calls and ("jit", "gds", []) not in host.calls
    hooks = [c[1]["hooks"][0] for c in host.calls if c[0] == "edits"]
    assert hooks[0]["args"] == ["nvidia-ctk", "hook", "enable-cuda-compat", "--host-driver-version=550.54.15"]
    cfg["features"]["disable-cuda-compat-lib-hook"] = True
    host.calls.clear()
    modify_spec(spec(["NVIDIA_VISIBLE_DEVICES=0"]), cfg, host, Logger())
    assert not [c for c in host.calls if c[0] == "edits"]


# ------------------------------------------------------------------ csv
def test_csv_requests_and_requirements():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=12.0"])
    result, host = run(s, "auto", StaticProbes(tegra=True))
    assert result == "csv"
    assert ("jit", "csv", ["0"]) in host.calls
    with pytest.raises(ModifyError, match="unsatisfied condition"):
        run(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=13.0"]), "csv")
    result, host = run(
        spec(
            ["NVIDIA_VISIBLE_DEVICES=none", "NVIDIA_REQUIRE_CUDA=cuda>=13.0", "NVIDIA_DISABLE_REQUIRE=true"]
        ),
        "csv",
    )
    assert ("jit", "csv", ["all"]) in host.calls


# ------------------------------------------------------------------ gvisor
def test_gvisor_sandbox_makes_spec_runsc_ready():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"])
    _, host = run(s, "cdi", sandbox="gvisor")
    assert host.calls[-1] == ("gvisor",)
    assert s["x-runsc"] is True
    s = spec([])
    _, host = run(s, "cdi", sandbox="gvisor")
    assert host.calls == []


def test_privilege_rule_applies_before_mode():
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"])
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = "cdi"
    cfg["accept-nvidia-visible-devices-envvar-when-unprivileged"] = False
    host = FakeHost(cfg)
    assert modify_spec(s, cfg, host, Logger()) is None
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"], privileged=True)
    assert modify_spec(s, cfg, host, Logger()) == "cdi"


def test_real_gvisor_rules_are_applied():
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["sandbox"] = "gvisor"
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"])
    notes = Host(cfg).runsc_ready(s)
    assert isinstance(notes, list) and all(isinstance(n, str) for n in notes)


# ------------------------------------------------------------------ every hook gets its own env
HOOK_TYPES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@pytest.mark.parametrize("mode", ["cdi", "jit-cdi", "legacy", "csv"])
def test_every_hook_of_every_type_gets_an_explicit_env_unless_it_has_one(mode):
    own = ["ONLY=mine"]
    hooks = {t: [{"path": f"/{t}"}, {"path": f"/{t}-own", "env": own}] for t in HOOK_TYPES}
    hooks["createContainer"].append({"path": "/empty-env", "env": []})  # runc drops [] (omitempty)
    hooks["poststop"].append({"path": "/null-env", "env": None})
    s = spec(["NVIDIA_VISIBLE_DEVICES=0", "LD_PRELOAD=/proc/self/cwd/x.so"], hooks=hooks)
    result, _ = run(s, mode)
    assert result == mode
    for t in HOOK_TYPES:
        for hook in s["hooks"][t]:
            want = own if hook["path"].endswith("-own") else SAFE_ENV
            assert hook["env"] == want, (t, hook)


def test_pass_through_keeps_hooks_without_env_untouched():
    s = spec([], hooks={"createContainer": [{"path": "/x"}]})
    assert run(s, "cdi")[0] is None
    assert s["hooks"] == {"createContainer": [{"path": "/x"}]}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        ({"PATH": ".:bin::/usr/bin:/usr/bin:/opt/x"}, ["PATH=/usr/bin:/opt/x"]),
        (
            {"PATH": "/bin", "NVIDIA_CTK_CONFIG_FILE_PATH": "/etc/x.toml", "LD_PRELOAD": "/x.so"},
            ["PATH=/bin", "NVIDIA_CTK_CONFIG_FILE_PATH=/etc/x.toml"],
        ),
        ({"PATH": "/bin", "NVIDIA_CTK_CONFIG_FILE_PATH": "rel.toml"}, ["PATH=/bin"]),
    ],
)
def test_safe_hook_env_is_minimal(environ, expected):
    from gpuctk.oci.spec import safe_hook_env

    assert safe_hook_env(environ) == expected


# ------------------------------------------------------------------ feature-gated without devices
class NoGdsHost(FakeHost):
    def jit_spec(self, mode, ids, csv_all=False):
        if mode == "gds":
            raise ModifyError("failed to generate CDI spec for mode=gds: /: no device nodes for mode gds")
        return super().jit_spec(mode, ids, csv_all)


class RecordingLogger(Logger):
    def __init__(self):
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def log(self, level_name, msg):
        self.lines.append((level_name, msg))


@pytest.mark.parametrize("mode", ["legacy", "csv"])
def test_gated_feature_without_device_nodes_starts_the_container_without_it(mode):
    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = mode
    host = NoGdsHost(cfg)
    log = RecordingLogger()
    s = spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_GDS=enabled", "NVIDIA_MOFED=enabled"])
    assert modify_spec(s, cfg, host, log) == mode
    assert ("jit", "mofed", []) in host.calls  # the other feature is still applied
    assert (
        "warning",
        "failed to generate CDI spec for mode=gds: /: no device nodes for mode gds; "
        "starting the container without mode=gds",
    ) in log.lines
    if mode == "legacy":
        assert s["hooks"]["prestart"][0]["path"] == "/opt/gpuctk/bin/gpuctk-runtime-hook"


def test_requested_jit_device_that_cannot_be_generated_still_fails():
    cfg = default_config_typed()
    host = NoGdsHost(cfg)
    s = spec(["NVIDIA_VISIBLE_DEVICES=runtime.nvidia.com/gpu=0", "NVIDIA_GDS=enabled"])
    with pytest.raises(ModifyError, match="mode=gds"):
        modify_spec(s, cfg, host, Logger(), "jit-cdi")


# ------------------------------------------------------------------ driver version
def test_driver_version_from_proc_then_from_libcuda_under_the_root(tmp_path):
    cfg = default_config_typed()
    cfg["nvidia-container-cli"]["root"] = str(tmp_path)
    host = Host(cfg)
    assert host.driver_version() is None
    lib = tmp_path / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    for name in (
        "libcuda.so",
        "libcuda.so.1",
        "libcuda.so.550.54.15",
        "libcuda.so.550.x",
        "libcudart.so.12.4",
    ):
        (lib / name).write_text("")
    assert host.driver_version() == "550.54.15"  # a driver container root: no proc/ of its own
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  560.35.03  Fri Aug 16 21:39:15 UTC 2024\n"
    )
    assert host.driver_version() == "560.35.03"


def test_cuda_compat_hook_in_legacy_mode_uses_the_libcuda_version(tmp_path):
    class RootHost(FakeHost):
        driver_version = Host.driver_version

    cfg = default_config_typed()
    cfg["nvidia-container-runtime"]["mode"] = "legacy"
    cfg["nvidia-container-runtime"]["modes"]["legacy"]["cuda-compat-mode"] = "hook"
    cfg["nvidia-container-cli"]["root"] = str(tmp_path)
    (tmp_path / "usr/lib64").mkdir(parents=True)
    (tmp_path / "usr/lib64/libcuda.so.535.183.01").write_text("")
    host = RootHost(cfg)
    s = spec(["NVIDIA_VISIBLE_DEVICES=0"])
    modify_spec(s, cfg, host, Logger())
    hooks = [c[1]["hooks"][0] for c in host.calls if c[0] == "edits"]
    assert hooks[0]["args"][-1] == "--host-driver-version=535.183.01"


def test_host_hook_env_names_a_config_found_through_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.delenv("NVIDIA_CTK_CONFIG_FILE_PATH", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    host = Host(default_config_typed())
    assert host.hook_env() == ["PATH=/usr/bin"]  # no file there: nothing to name
    (tmp_path / "nvidia-container-runtime").mkdir()
    (tmp_path / "nvidia-container-runtime/config.toml").write_text("")
    assert host.hook_env() == [
        "PATH=/usr/bin",
        f"NVIDIA_CTK_CONFIG_FILE_PATH={tmp_path}/nvidia-container-runtime/config.toml",
    ]
