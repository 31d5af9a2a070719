"""`cdi generate` never exits 0 with a spec that has no devices, and its readers (CSV mount
specs, inventory JSON, nvidia-smi XML) turn hostile files into one-line errors, exit 1."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from gpuctk.discover.nvsmi import parse_nvidia_smi_xml
from gpuctk.errors import GpuctkError
from support.tools import venv_script


def _generate(*args, env=None):
    res = subprocess.run(
        [venv_script("gpuctk"), "cdi", "generate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _one_line_failure(res, expect):
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == ""
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and expect in errors[0], res.stderr


def test_csv_mode_without_tegra_files_fails_like_upstream(tmp_path):
    res = _generate("--mode", "csv", "--driver-root", str(tmp_path))
    _one_line_failure(res, "csv mode: no device nodes found from the CSV files")


def test_csv_mode_with_a_missing_csv_file_fails(tmp_path):
    res = _generate("--mode", "csv", "--driver-root", str(tmp_path), "--csv.file", str(tmp_path / "gone.csv"))
    _one_line_failure(res, "no device nodes found")
    assert "gone.csv" in res.stderr  # the error names the file


@pytest.mark.parametrize(
    "make, expect",
    [
        (
            lambda p: (p / "nul.csv").write_bytes(b"dev, /dev/nvmap\nlib, /usr/lib/x\0y\n"),
            "line 2: NUL byte in CSV file",
        ),
        (lambda p: os.mkfifo(p / "nul.csv"), "cannot read CSV file: not a regular file"),
    ],
    ids=["nul", "fifo"],
)
def test_hostile_csv_file_is_a_one_line_error(tmp_path, make, expect):
    make(tmp_path)
    res = _generate("--mode", "csv", "--driver-root", str(tmp_path), "--csv.file", str(tmp_path / "nul.csv"))
    _one_line_failure(res, expect)


def test_csv_dev_zero_is_refused(tmp_path):
    res = _generate("--mode", "csv", "--driver-root", str(tmp_path), "--csv.file", "/dev/zero")
    _one_line_failure(res, "/dev/zero: cannot read CSV file: not a regular file")


def _inventory(tmp_path, doc):
    p = tmp_path / "inv.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


GPU = {"index": 0, "minor": 0, "uuid": "GPU-1", "name": "x", "pci_bus_id": "0000:01:00.0"}


@pytest.mark.parametrize(
    "doc, expect",
    [
        ({"gpus": [{**GPU, "mig_enabled": "false"}]}, "gpus[0].mig_enabled: expected a boolean"),
        ({"gpus": [{**GPU, "mig_enabled": 0}]}, "gpus[0].mig_enabled: expected a boolean"),
        ({"gpus": [{**GPU, "minor": "9" * 5000}]}, "gpus[0].minor: expected an integer"),
        ('{"gpus": [{"index": ' + "9" * 5000 + "}]}", "invalid inventory JSON"),
        ({"gpus": [{**GPU, "index": 10**30}]}, "gpus[0].index: expected an integer from 0"),
        ('{"gpus": ' + "[" * 100000 + "]" * 100000 + "}", "nested more than 32 levels"),
        ({"gpus": [{**GPU, "mig_enabled": True}]}, "no devices found"),
    ],
    ids=["mig-string", "mig-int", "digits-string", "digits-number", "huge-int", "deep", "mig-without-migs"],
)
def test_bad_inventory_is_a_one_line_error(sim_nodes, tmp_path, doc, expect):
    node = sim_nodes.get("dgx-h100")
    res = _generate("--driver-root", node.root, "--mode", "nvml", "--inventory", _inventory(tmp_path, doc))
    _one_line_failure(res, expect)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "huge"])
def test_inventory_that_is_not_a_small_regular_file_is_refused(sim_nodes, tmp_path, special):
    node = sim_nodes.get("dgx-h100")
    path = special
    if special == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif special == "huge":
        path = str(tmp_path / "huge.json")
        with open(path, "wb") as f:
            f.truncate(17 << 20)
    res = _generate("--driver-root", node.root, "--inventory", path)
    _one_line_failure(res, "cannot read inventory")


def test_management_mode_cli_default_kind_is_upstreams(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    for mode in ("management", "nvswitch", "imex"):
        res = _generate(
            "--driver-root", node.root, "--inventory", node.inventory_path, "--mode", mode, "--format", "json"
        )
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["kind"] == "nvidia.com/gpu", mode
    res = _generate(
        "--driver-root",
        node.root,
        "--inventory",
        node.inventory_path,
        "--mode",
        "management",
        "--vendor",
        "management.nvidia.com",
        "--format",
        "json",
    )
    assert json.loads(res.stdout)["kind"] == "management.nvidia.com/gpu"


@pytest.mark.parametrize(
    "doc, expect",
    [
        (b"<nvidia_smi_log>" + b"<a>" * 200 + b"</a>" * 200 + b"</nvidia_smi_log>", "nested more than 64"),
        (b"<nvidia_smi_log>" + b"<a/>" * 600_000 + b"</nvidia_smi_log>", "more than 500000 elements"),
        (b"<nvidia_smi_log>" + b"<gpu/>" * 2000 + b"</nvidia_smi_log>", "more than 1024"),
        (b"x" * (17 << 20), "too large"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><nvidia_smi_log/>', "not allowed"),
        (b"<nvidia_smi_log><gpu>", "malformed"),
    ],
    ids=["deep", "many", "gpus", "huge", "entity", "truncated"],
)
def test_hostile_nvidia_smi_xml_is_bounded(doc, expect):
    with pytest.raises(GpuctkError, match=expect):
        parse_nvidia_smi_xml(doc)


def test_nvidia_smi_xml_huge_number_is_not_a_number():
    doc = b"<nvidia_smi_log><gpu><minor_number>" + b"9" * 5000 + b"</minor_number></gpu></nvidia_smi_log>"
    assert parse_nvidia_smi_xml(doc)["gpus"][0]["minor_number"] is None


def test_descriptor_devices_count_only_when_asked(tmp_path):
    """A regular file holding gpuctk_sim_char_device is not a device node on a real host."""
    sim = subprocess.run(
        [venv_script("gpuctk"), "sim", "create", "--profile", "dgx-h100", "--no-mknod", str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr
    assert "--simulated-devices" in sim.stdout
    args = [
        "--driver-root",
        str(tmp_path / "n" / "root"),
        "--inventory",
        str(tmp_path / "n" / "inventory.json"),
    ]
    res = _generate(*args, "--format", "json", "--mode", "management")
    _one_line_failure(res, "no NVIDIA device nodes found")
    res = _generate(*args, "--format", "json", "--mode", "management", "--simulated-devices")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["devices"][0]["containerEdits"]["deviceNodes"]


def test_control_characters_in_a_device_id_stay_on_one_line(sim_nodes):
    node = sim_nodes.get("dgx-h100")
    res = _generate("--driver-root", node.root, "--mode", "imex", "--device-id", "x\ny\x1b[31m")
    _one_line_failure(res, "--device-id x\\ny\\x1b[31m: invalid IMEX channel")
