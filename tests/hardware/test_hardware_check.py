"""scripts/hardware-check against simulated nodes: the same command and summary as on a GPU host.

Each broken node breaks one thing a real host can get wrong (a driver upgrade that left
nvidia-smi and the libraries at different versions, a missing libcuda, procfs disagreeing
with NVML) and the test asserts that exactly the check meant to catch it fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from gpuctk.sim import create_node
from support.tools import require_root, require_tool

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "hardware-check")
VERSION = "580.105.08"


def run_check(node, out, *extra, env=None, use_roots=True):
    argv = [sys.executable, SCRIPT, "--out", str(out)]
    if use_roots:
        argv += ["--driver-root", node.root, "--dev-root", node.root, "--inventory", node.inventory_path]
    p = subprocess.run([*argv, *extra], capture_output=True, text=True, env=env, timeout=240, check=False)
    return p


def checks_of(p):
    summary = json.loads(p.stdout)
    return {c["name"]: c for c in summary["checks"]}, summary


def status(checks):
    return {n: c["status"] for n, c in checks.items()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    base = tmp_path_factory.mktemp("hwcheck")
    node = create_node("dgx-h100", str(base / "node"))
    p = run_check(node, base / "out", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    checks, summary = checks_of(p)
    return node, base / "out", checks, summary


def fresh_node(tmp_path, name="node"):
    return create_node("dgx-h100", str(tmp_path / name))


def test_sim_node_passes_every_check_but_nvml(baseline):
    _node, _out, checks, summary = baseline
    st = status(checks)
    for name in (
        "driver-root",
        "capture.nvidia-smi",
        "capture.layout",
        "generate.nvml",
        "validate.nvml",
        "generate.management",
        "validate.management",
        "hostpaths",
        "versions",
        "inventory",
        "jit",
    ):
        assert st[name] == "pass", checks[name]
    # a simulated node has no working NVML: reported as skipped, never as passed
    assert st["nvml"] == "skip"
    assert re.search(r"not importable|NVML unavailable", checks["nvml"]["detail"]), checks["nvml"]
    assert summary["ok"] is True and "fail" not in st.values()
    assert summary["facts"]["driver_version"] == VERSION
    assert checks["generate.nvml"]["detail"].startswith("nvidia.com/gpu CDI")
    assert " 17 devices" in checks["generate.nvml"]["detail"]  # 8 by index, 8 by UUID, all
    # the CLI writes nvidia.com/gpu in every mode, as `nvidia-ctk cdi generate` does (management too)
    assert checks["generate.management"]["detail"].startswith("nvidia.com/gpu CDI")
    assert " 1 devices" in checks["generate.management"]["detail"]
    assert "8 GPUs" in checks["inventory"]["detail"]


def test_outputs_are_the_node_captures(baseline):
    node, out, _checks, summary = baseline
    smi_xml = subprocess.run([node.nvidia_smi, "-q", "-x"], capture_output=True, text=True, check=True).stdout
    assert (out / "nvidia-smi" / "q-x.xml").read_text() == smi_xml
    listing = (out / "nvidia-smi" / "L.txt").read_text()
    assert len(re.findall(r"^GPU \d+: NVIDIA H100", listing, re.M)) == 8
    proc = out / "procfs" / "proc" / "driver" / "nvidia" / "version"
    with open(os.path.join(node.root, "proc/driver/nvidia/version")) as f:
        assert proc.read_text() == f.read()
    layout = json.loads((out / "layout.json").read_text())
    libcuda = [e for e in layout["libraries"] if os.path.basename(e["path"]) == f"libcuda.so.{VERSION}"]
    assert libcuda and libcuda[0]["soname"] == "libcuda.so.1" and libcuda[0]["type"] == "file"
    assert {os.path.basename(e["path"]) for e in layout["binaries"]} >= {"nvidia-smi", "nvidia-persistenced"}
    assert [os.path.basename(e["path"]) for e in layout["firmware"]] == ["gsp_ga10x.bin", "gsp_tu10x.bin"]
    for name in ("spec-nvml.json", "spec-management.json", "spec-jit.json", "inventory-procfs.json"):
        assert json.loads((out / name).read_text()), name
    assert json.loads((out / "summary.json").read_text()) == summary
    # every device the generated spec names is a GPU of the node, by index and by UUID
    spec = json.loads((out / "spec-nvml.json").read_text())
    names = {d["name"] for d in spec["devices"]}
    assert names == {str(i) for i in range(8)} | {g["uuid"] for g in node.gpus} | {"all"}


def test_text_summary_and_exit_code(tmp_path):
    node = fresh_node(tmp_path)
    p = run_check(node, tmp_path / "out", "--no-container")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) <= 25  # one screen
    assert any(re.match(r"PASS\s+hostpaths\s+all \d+ hostPaths", ln) for ln in lines), p.stdout
    assert any(re.match(r"SKIP\s+nvml\s", ln) for ln in lines), p.stdout
    assert any(re.match(r"SKIP\s+container\s+--no-container", ln) for ln in lines), p.stdout
    assert re.search(r"^\d+ passed, 0 failed, 3 skipped$", p.stdout, re.M), p.stdout
    assert (tmp_path / "out" / "summary.txt").read_text() == p.stdout


def test_driver_root_found_from_nvidia_smi_on_path(tmp_path):
    node = fresh_node(tmp_path)
    env = dict(os.environ, PATH=os.path.dirname(node.nvidia_smi) + ":" + os.environ["PATH"])
    p = run_check(
        node,
        tmp_path / "out",
        "--json",
        "--no-container",
        "--inventory",
        node.inventory_path,
        env=env,
        use_roots=False,
    )
    checks, summary = checks_of(p)
    assert checks["driver-root"]["status"] == "pass"
    assert summary["facts"]["driver_root"] == node.root
    assert summary["facts"]["driver_root_how"].startswith("parent of nvidia-smi on PATH")
    assert summary["facts"]["dev_root"].startswith(node.root + " (the driver root")
    assert checks["hostpaths"]["status"] == checks["versions"]["status"] == "pass", p.stdout
    assert p.returncode == 0, p.stdout


def test_usr_local_nvidia_layout_found_from_path(tmp_path):
    """The lent GPU machine's layout: the driver in /usr/local/nvidia/{lib64,bin}, devices in /."""
    import shutil

    node = fresh_node(tmp_path)
    drv = tmp_path / "usr-local-nvidia"
    shutil.copytree(os.path.join(node.root, "usr/lib/x86_64-linux-gnu"), drv / "lib64", symlinks=True)
    shutil.copytree(os.path.join(node.root, "usr/bin"), drv / "bin", symlinks=True)
    shutil.rmtree(os.path.join(node.root, "usr"))  # nothing left where a standard layout looks
    env = dict(os.environ, PATH=str(drv / "bin") + ":" + os.environ["PATH"])
    argv = ["--json", "--dev-root", node.root, "--inventory", node.inventory_path]
    p = run_check(node, tmp_path / "out", *argv, env=env, use_roots=False)
    checks, summary = checks_of(p)
    assert summary["facts"]["driver_root"] == str(drv), summary["facts"]
    assert summary["facts"]["driver_root_how"] == f"parent of nvidia-smi on PATH ({drv}/bin/nvidia-smi)"
    for name in ("generate.nvml", "generate.management", "hostpaths", "versions", "inventory", "jit"):
        assert checks[name]["status"] == "pass", checks[name]
    spec = json.loads((tmp_path / "out" / "spec-nvml.json").read_text())
    mounts = {m["containerPath"]: m["hostPath"] for m in spec["containerEdits"]["mounts"]}
    assert mounts[f"/lib64/libcuda.so.{VERSION}"] == f"{drv}/lib64/libcuda.so.{VERSION}"
    assert mounts["/bin/nvidia-smi"] == f"{drv}/bin/nvidia-smi"
    if checks["container"]["status"] != "skip":  # root with namespaces: see the probe test
        assert f"-> /lib64/libcuda.so.{VERSION}," in checks["container"]["detail"]
    assert p.returncode == 0, p.stdout


def test_version_mismatch_fails_the_version_check(tmp_path):
    node = fresh_node(tmp_path)
    # nvidia-smi (the kernel side) was upgraded, the user-space libraries were not
    with open(node.nvidia_smi) as f:
        script = f.read()
    with open(node.nvidia_smi, "w") as f:
        f.write(script.replace(VERSION, "580.95.05"))
    p = run_check(node, tmp_path / "out", "--json", "--no-container")
    checks, summary = checks_of(p)
    assert p.returncode == 1 and summary["ok"] is False
    assert checks["versions"]["status"] == "fail"
    assert "580.95.05" in (tmp_path / "out" / "versions.txt").read_text()
    assert "no libcuda.so.580.95.05 mounted" in (tmp_path / "out" / "versions.txt").read_text()
    failed = {n for n, c in checks.items() if c["status"] == "fail"}
    assert failed == {"versions"}, failed


def test_removed_libcuda_fails(tmp_path):
    node = fresh_node(tmp_path)
    libdir = os.path.join(node.root, "usr/lib/x86_64-linux-gnu")
    for n in os.listdir(libdir):
        if n.startswith("libcuda.so"):
            os.unlink(os.path.join(libdir, n))
    p = run_check(node, tmp_path / "out", "--json", "--no-container")
    checks, _summary = checks_of(p)
    assert p.returncode == 1
    assert checks["versions"]["status"] == "fail"
    assert f"nvml: no libcuda.so.{VERSION} mounted" in (tmp_path / "out" / "versions.txt").read_text()
    assert checks["inventory"]["status"] == "pass"


def test_procfs_disagreeing_with_the_inventory_fails(tmp_path):
    node = fresh_node(tmp_path)
    gpu = node.gpus[3]
    info = os.path.join(node.root, "proc/driver/nvidia/gpus", gpu["pci_bus_id"], "information")
    with open(info) as f:
        text = f.read()
    assert gpu["uuid"] in text
    with open(info, "w") as f:
        f.write(text.replace(gpu["uuid"], "GPU-00000000-0000-0000-0000-000000000000"))
    p = run_check(node, tmp_path / "out", "--json", "--no-container")
    checks, _summary = checks_of(p)
    assert p.returncode == 1
    assert checks["inventory"]["status"] == "fail"
    diffs = (tmp_path / "out" / "inventory-compare.txt").read_text()
    assert f"{gpu['pci_bus_id']}: uuid {gpu['uuid']}" in diffs


FAKE_PYNVML = '''
"""A stand-in for nvidia-ml-py answering for the simulated node (tests only)."""
import json
_INV = json.loads({inv!r})
_G = _INV["gpus"]
class _Pci:
    def __init__(self, bus):
        self.busId = bus.encode()
def nvmlInit():
    pass
def nvmlShutdown():
    pass
def nvmlDeviceGetCount():
    return len(_G)
def nvmlDeviceGetHandleByIndex(i):
    return i
def nvmlDeviceGetMigMode(h):
    return (0, 0)
def nvmlDeviceGetName(h):
    return _G[h]["name"].encode()
def nvmlDeviceGetUUID(h):
    return _G[h]["uuid"]
def nvmlDeviceGetPciInfo(h):
    return _Pci("0000" + _G[h]["pci_bus_id"].upper())
def nvmlDeviceGetMinorNumber(h):
    return _G[h]["minor"]
def nvmlSystemGetCudaDriverVersion():
    return 13000
def nvmlSystemGetDriverVersion():
    return _INV["driver_version"].encode()
'''


def write_fake_pynvml(directory, inventory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "pynvml.py"), "w") as f:
        f.write(FAKE_PYNVML.format(inv=json.dumps(inventory)))
    return str(directory)


def test_nvml_inventory_is_compared_with_procfs(tmp_path):
    node = fresh_node(tmp_path)
    with open(node.inventory_path) as f:
        inv = json.load(f)
    good = write_fake_pynvml(tmp_path / "good", inv)
    p = run_check(node, tmp_path / "out", "--json", "--no-container", "--pynvml", good)
    checks, _summary = checks_of(p)
    assert checks["nvml"]["status"] == "pass", checks["nvml"]
    assert f"NVML {VERSION}: 8 GPUs" in checks["nvml"]["detail"]
    assert checks["inventory"]["status"] == "pass" and "NVML" in checks["inventory"]["detail"]
    assert p.returncode == 0, p.stdout
    # NVML numbering the device nodes differently from the kernel: caught
    inv["gpus"][0]["minor"], inv["gpus"][1]["minor"] = inv["gpus"][1]["minor"], inv["gpus"][0]["minor"]
    swapped = write_fake_pynvml(tmp_path / "swapped", inv)
    p = run_check(node, tmp_path / "out2", "--json", "--no-container", "--pynvml", swapped)
    checks, _summary = checks_of(p)
    assert p.returncode == 1
    assert checks["inventory"]["status"] == "fail"
    diffs = (tmp_path / "out2" / "inventory-compare.txt").read_text()
    assert f"{node.gpus[0]['pci_bus_id']}: minor 1 (NVML) != 0 (procfs)" in diffs


def test_container_probe_loads_the_injected_libcuda(baseline):
    require_root()
    require_tool("unshare")
    _node, out, checks, _summary = baseline
    assert checks["container"]["status"] == "pass", checks["container"]
    probe = json.loads((out / "container" / "probe.json").read_text())
    assert probe["loaded"] is True
    assert probe["realpath"] == f"/usr/lib/x86_64-linux-gnu/libcuda.so.{VERSION}"
    # the spec's device nodes are in the root's /dev, and nothing else is
    assert set(probe["dev"]) == {f"nvidia{i}" for i in range(8)} | {
        "nvidiactl",
        "nvidia-modeset",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "dri",
    }
    # the spec's createContainer hooks ran in the root: update-ldcache's ld.so.cache finds
    # libcuda.so.1 (create-symlinks' link) by SONAME, as a CUDA program would
    assert "hooks run: create-symlinks, enable-cuda-compat, update-ldcache" in checks["container"]["detail"]
    assert probe["ld.so.cache_libcuda"] is True and probe["how"] == "soname", probe
    assert "libcuda.so.1 loaded by SONAME (in the root's ld.so.cache)" in checks["container"]["detail"]
    assert probe["loader_path"] == probe["realpath"]
    # the root holds only what the probe and the spec brought: no host userland
    assert "bin" not in probe["root_entries"] and "home" not in probe["root_entries"]
    # the simulated libcuda has no code: the CUDA calls are skipped, and say why
    assert checks["container.cuda"]["status"] == "skip"
    assert "simulated" in checks["container.cuda"]["detail"]
    assert probe["cuInit"] is False


def test_unwritable_out_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = subprocess.run(
        [sys.executable, SCRIPT, "--out", str(blocker / "sub")], capture_output=True, text=True, check=False
    )
    assert p.returncode == 2
    assert p.stderr.startswith("hardware-check: error: --out") and "Traceback" not in p.stderr


def load_script():
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("hardware_check", SCRIPT)
    spec = importlib.util.spec_from_loader("hardware_check", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_spec_checks_catch_a_missing_host_path_and_a_stray_version(baseline, tmp_path):
    """The generator never emits a missing path, so the checks get a spec that does."""
    hc = load_script()
    _node, out, _checks, _summary = baseline
    spec = json.loads((out / "spec-nvml.json").read_text())
    rep = hc.Report(str(tmp_path))
    hc.check_host_paths(rep, {"nvml": spec})
    hc.check_versions(rep, {"nvml": spec}, VERSION, _node.root)
    assert [c["status"] for c in rep.checks] == ["pass", "pass"], rep.checks
    lib = next(m for m in spec["containerEdits"]["mounts"] if "libnvidia-ptxjitcompiler.so." in m["hostPath"])
    lib["hostPath"] = lib["hostPath"].replace(VERSION, "580.95.05")
    rep = hc.Report(str(tmp_path))
    hc.check_host_paths(rep, {"nvml": spec})
    hc.check_versions(rep, {"nvml": spec}, VERSION, _node.root)
    hostpaths, versions = rep.checks
    assert hostpaths["status"] == "fail" and "libnvidia-ptxjitcompiler.so.580.95.05" in hostpaths["detail"]
    assert versions["status"] == "fail" and "carries 580.95.05" in versions["detail"]


def test_nvml_that_cannot_initialise_is_a_skip_with_the_reason(baseline, tmp_path):
    node = baseline[0]
    with open(node.inventory_path) as f:
        inv = json.load(f)
    d = write_fake_pynvml(tmp_path / "broken", inv)
    src = os.path.join(d, "pynvml.py")
    with open(src) as f:
        text = f.read()
    with open(src, "w") as f:
        f.write(
            text.replace(
                "def nvmlInit():\n    pass", "def nvmlInit():\n    raise RuntimeError('Driver Not Loaded')"
            )
        )
    p = run_check(node, tmp_path / "out", "--json", "--no-container", "--pynvml", d)
    checks, _summary = checks_of(p)
    assert checks["nvml"]["status"] == "skip"
    assert "nvmlInit failed: RuntimeError: Driver Not Loaded" in checks["nvml"]["detail"]
    assert checks["inventory"]["status"] == "pass" and "NVML" not in checks["inventory"]["detail"]
    assert p.returncode == 0, p.stdout


def test_no_driver_is_a_failed_summary_not_a_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--out",
            str(tmp_path / "out"),
            "--json",
            "--driver-root",
            str(empty),
            "--dev-root",
            str(empty),
            "--nvidia-smi",
            str(empty / "nvidia-smi"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    checks, summary = checks_of(p)
    assert summary["ok"] is False
    assert checks["driver-root"]["status"] == "fail"
    assert checks["capture.nvidia-smi"]["status"] == "fail"
    assert {checks[n]["status"] for n in ("hostpaths", "versions", "jit", "container")} == {"skip"}


def test_bad_inventory_is_a_usage_error(tmp_path):
    bad = tmp_path / "inv.json"
    bad.write_text("[1, 2")
    p = subprocess.run(
        [sys.executable, SCRIPT, "--out", str(tmp_path / "out"), "--inventory", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 2
    assert p.stderr.startswith(f"hardware-check: error: --inventory: {bad}: invalid inventory JSON")


def test_mig_devices_are_counted_on_every_side(tmp_path):
    import shutil

    node = create_node("dgx-a100-mig", str(tmp_path / "node"))
    p = run_check(node, tmp_path / "out", "--json", "--no-container")
    checks, _summary = checks_of(p)
    assert p.returncode == 0, p.stdout
    assert checks["inventory"]["status"] == "pass" and "MIG counts agree" in checks["inventory"]["detail"]
    assert " 27 devices" in checks["generate.nvml"]["detail"]  # 6 GPUs + 7 MIG devices, twice, + all
    # the kernel lost one of GPU 0's GPU instances: procfs now shows 3 MIG devices, NVML 4
    caps = os.path.join(node.root, "proc/driver/nvidia/capabilities/gpu0/mig")
    shutil.rmtree(os.path.join(caps, sorted(os.listdir(caps))[0]))
    p = run_check(node, tmp_path / "out2", "--json", "--no-container")
    checks, _summary = checks_of(p)
    assert p.returncode == 1 and checks["inventory"]["status"] == "fail"
    bus = node.gpus[0]["pci_bus_id"]
    assert f"{bus}: mig devices 4 (inventory" in (tmp_path / "out2" / "inventory-compare.txt").read_text()
