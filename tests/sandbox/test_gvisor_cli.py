"""`gpuctk oci check|fix --sandbox gvisor`: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import gvisor_fixtures as fx
import pytest

from gpuctk.cli.main import main

RULES = os.path.join(fx.DATA, "rules")
FLOWS = os.path.join(fx.DATA, "flows")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_d2_leak_is_reported_as_a_failure_with_the_fix(capsys):
    rc, out, _ = run(
        capsys,
        "oci",
        "check",
        "--sandbox",
        "gvisor",
        os.path.join(RULES, "D2-fail-isolation-leak.json"),
        "--driver-version",
        fx.DRIVER,
    )
    assert rc == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("FAIL D2"))
    assert "isolation leak" in line and "--device=all" in line
    fix = out.splitlines()[out.splitlines().index(line) + 1]
    assert fix.strip().startswith("fix:") and 'single "void" entry' in fix
    assert "runsc also runs nvidia-container-cli: yes" in out.splitlines()[0]


def test_json_report(capsys):
    rc, out, _ = run(
        capsys,
        "oci",
        "check",
        "--sandbox",
        "gvisor",
        os.path.join(RULES, "D2-fail-isolation-leak.json"),
        "--json",
    )
    doc = json.loads(out)
    assert rc == 1 and doc["ok"] is False and doc["flow"] == "cdi" and doc["sandbox"] == "gvisor"
    assert doc["runs_nvidia_container_cli"] is True and doc["effective_visible_devices"] == "all"
    assert doc["driver_list_date"] == "2026-08-21"
    d2 = next(f for f in doc["findings"] if f["rule"] == "D2")
    assert set(d2) == {"rule", "status", "reason", "fix"} and d2["status"] == "fail"


@pytest.mark.parametrize("flow", ["cdi", "legacy"])
def test_good_flows_exit_zero_with_warnings(capsys, flow):
    rc, out, _ = run(
        capsys,
        "oci",
        "check",
        "--sandbox",
        "gvisor",
        os.path.join(FLOWS, f"{flow}.json"),
        "--driver-version",
        fx.DRIVER,
    )
    assert rc == 0
    assert f"flow {flow}" in out and out.splitlines()[-1].startswith("result: 0 fail")


def test_bundle_directory_and_stdin(capsys, tmp_path, monkeypatch):
    shutil.copy(os.path.join(FLOWS, "cdi.json"), tmp_path / "config.json")
    rc, out, _ = run(
        capsys, "oci", "check", "--sandbox", "gvisor", str(tmp_path), "--driver-version", fx.DRIVER
    )
    assert rc == 0 and "config.json: flow cdi" in out
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO((tmp_path / "config.json").read_text()))
    rc, out, _ = run(capsys, "oci", "check", "--sandbox", "gvisor", "-", "--driver-version", fx.DRIVER)
    assert rc == 0 and out.startswith("<stdin>: flow cdi")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "invalid JSON: line 1 column 2"),
        ("[1, 2]", "an OCI spec must be a JSON object"),
        ('{"process": {"env": "A=B"}}', "process.env: must be a JSON array"),
        ('{"hooks": []}', "hooks: must be a JSON object"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    rc, out, err = run(capsys, "oci", "check", "--sandbox", "gvisor", str(path))
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"gpuctk: error: {path}: ") and message in err


def test_missing_file_and_bad_runsc_toml(capsys, tmp_path):
    rc, _, err = run(capsys, "oci", "check", "--sandbox", "gvisor", str(tmp_path / "nope.json"))
    assert rc == 1 and "cannot read" in err and err.count("\n") == 1
    toml = tmp_path / "runsc.toml"
    toml.write_text("[runsc_config\n")
    rc, _, err = run(
        capsys,
        "oci",
        "check",
        "--sandbox",
        "gvisor",
        os.path.join(FLOWS, "cdi.json"),
        "--runsc-config",
        str(toml),
    )
    assert rc == 1 and f"{toml}: not valid TOML" in err and err.count("\n") == 1


def test_usage_errors_exit_two(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["oci", "check", os.path.join(FLOWS, "cdi.json")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["oci", "check", "--sandbox", "kata", os.path.join(FLOWS, "cdi.json")])
    assert exc.value.code == 2
    capsys.readouterr()


def test_runsc_config_feeds_the_rules(capsys):
    case = os.path.join(RULES, "D7-fail-pod-without-nvproxy")
    rc, out, _ = run(
        capsys,
        "oci",
        "check",
        "--sandbox",
        "gvisor",
        case + ".json",
        "--runsc-config",
        case + ".runsc.toml",
        "--driver-version",
        fx.DRIVER,
    )
    assert rc == 1 and any(ln.startswith("FAIL D7") for ln in out.splitlines())


def test_socket_mount_found_by_stat(capsys, tmp_path):
    sock_path = f"/tmp/gpuctk-gvisor-{os.getpid()}.ipc"
    srv = socket.socket(socket.AF_UNIX)
    try:
        srv.bind(sock_path)
        spec = fx.cdi_flow()
        spec["mounts"].append(
            {"destination": "/run/agent.ipc", "source": sock_path, "type": "bind", "options": ["rbind"]}
        )
        path = tmp_path / "config.json"
        path.write_text(json.dumps(spec))
        rc, out, _ = run(
            capsys, "oci", "check", "--sandbox", "gvisor", str(path), "--driver-version", fx.DRIVER
        )
    finally:
        srv.close()
        os.unlink(sock_path)
    assert rc == 1 and any(ln.startswith("FAIL C5") and "/run/agent.ipc" in ln for ln in out.splitlines())


def test_fix_then_check_passes(capsys, tmp_path):
    src = os.path.join(RULES, "D2-fail-isolation-leak.json")
    out_path = tmp_path / "fixed.json"
    rc, out, err = run(capsys, "oci", "fix", "--sandbox", "gvisor", src, "-o", str(out_path))
    assert rc == 0 and out == "" and "replaced by a single NVIDIA_VISIBLE_DEVICES=void" in err
    rc, out, _ = run(
        capsys, "oci", "check", "--sandbox", "gvisor", str(out_path), "--driver-version", fx.DRIVER
    )
    assert rc == 0, out


def test_fix_in_place_and_stdout(capsys, tmp_path):
    path = tmp_path / "config.json"
    shutil.copy(os.path.join(RULES, "L1-fail-toolkit-alias.json"), path)
    os.chmod(path, 0o600)
    rc, out, _ = run(capsys, "oci", "fix", "--sandbox", "gvisor", str(path))
    assert (
        rc == 0
        and json.loads(out)["hooks"]["prestart"][0]["path"] == "/usr/bin/nvidia-container-runtime-hook"
    )
    assert "nvidia-container-toolkit" in path.read_text(), "stdout mode leaves the file alone"
    rc, _, _ = run(capsys, "oci", "fix", "--sandbox", "gvisor", str(path), "--in-place")
    assert rc == 0 and "nvidia-container-runtime-hook" in path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_console_entry_point_has_no_traceback(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{")
    proc = subprocess.run(
        [sys.executable, "-m", "gpuctk.cli.main", "oci", "check", "--sandbox", "gvisor", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("gpuctk: error:")
    )


def test_gvisor_module_is_stdlib_only():
    code = (
        "import sys; before = set(sys.modules); import gpuctk.sandbox.gvisor; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and m != 'gpuctk'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_fix_output_errors_and_bad_driver_version_are_one_line(capsys, tmp_path):
    spec = os.path.join(FLOWS, "cdi.json")
    for target in (tmp_path, tmp_path / "missing" / "config.json"):
        rc, out, err = run(capsys, "oci", "fix", "--sandbox", "gvisor", spec, "-o", str(target))
        assert rc == 1 and out == ""
        assert err.startswith(f"gpuctk: error: {target}: cannot write") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == []
    rc, out, err = run(capsys, "oci", "check", "--sandbox", "gvisor", spec, "--driver-version", "garbage")
    assert rc == 2 and out == "" and "--driver-version: expected a version like" in err
