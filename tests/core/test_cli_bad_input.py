"""Hostile input to every entry point: a documented exit code, ONE stderr line naming the file
and field (or flag), no traceback, and nothing on disk changed.

Each row is (id, argv with {d} = a scratch dir of fixtures, exit code, text the error line
contains). Rows found by a user's-eye sweep of `gpuctk`, `gpuctk-runtime`; the fixtures below
say what each file holds.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gpuctk.cli.main import main

GOOD_SPEC = """cdiVersion: 0.6.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/null
"""

SNAPSHOT = "kind: GpuctkSnapshot\nversion: 1\n"

FIXTURES: dict[str, str | bytes] = {
    "cdi/nvidia.yaml": GOOD_SPEC,
    "runtimeclasses.yaml/keep": "a directory where `k8s manifests --out-dir` writes a file\n",
    "oci.json": '{"ociVersion": "1.0.0", "process": {"env": ["X=1"]}}\n',
    "list.json": "[]\n",
    "badutf8": b"\xff\xfe",
    "empty": "",
    "env-str.json": '{"process": {"env": "NVIDIA_VISIBLE_DEVICES=all"}}\n',
    "env-int.json": '{"process": {"env": [1]}}\n',
    "mounts-int.json": '{"mounts": [1]}\n',
    "annotations-list.json": '{"annotations": [1]}\n',
    "table-str.toml": 'nvidia-container-runtime = "x"\n',
    "mode.toml": '[nvidia-container-runtime]\nmode = "bogus"\n',
    "prefix.toml": '[nvidia-container-runtime.modes.cdi]\nannotation-prefixes = [""]\n',
    "driverlist-list.json": "[1]\n",
    "driverlist-date.json": '{"date": 1, "supported": [], "unsupported": []}\n',
    "snap-gpu.yaml": SNAPSHOT + "gpu: 5\n",
    "snap-gpus.yaml": SNAPSHOT + "gpu: {available: true, gpus: [5]}\n",
    "snap-engines.yaml": SNAPSHOT + "engines: [5]\n",
    "snap-missing.yaml": SNAPSHOT + "dev_char: {missing: [{link: 1}]}\n",
    "inventory.json": '{"gpus": 5}\n',
    "nodes.yaml": "kind: List\nitems:\n- kind: Node\n  metadata: {name: n}\n"
    "  status: {nodeInfo: {containerRuntimeVersion: [1]}}\n",
    # nesting deeper than Python's recursion limit: parsers raise RecursionError, not a decode error
    "deep.json": '{"a": ' + "[" * 100_000 + "]" * 100_000 + ', "NVIDIA_VISIBLE_DEVICES": "all"}\n',
    "deep.toml": "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
    # `TypeError: unhashable type: 'list'` once: the default runtime's name used as a key
    "ctd-default-list.toml": 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
    'default_runtime_name = ["a"]\n',
    "ctd1-default-list.toml": '[plugins.cri.containerd]\ndefault_runtime_name = ["a"]\n',
    "crio-default-list.conf": '[crio.runtime]\ndefault_runtime = ["a"]\n',
    # `k8s plan --from`: a node name that cannot be printed (an internal error in the table
    # output once), a recursive alias, ~10^9 values after alias expansion
    "nodes-surrogate.yaml": "kind: List\nitems:\n- kind: Node\n"
    '  metadata: {name: "n\\ud800", labels: {nvidia.com/gpu.present: "true"}}\n'
    '  status: {nodeInfo: {containerRuntimeVersion: "containerd://1.7.12"}}\n',
    "nodes-recursive.yaml": "kind: List\nitems: &a [*a]\n",
    "nodes-bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
    )
    + "kind: List\nitems: []\n",
}

CONFIGURE = ["runtime", "configure", "--runtime"]

CASES: list[tuple[str, list[str], int, str]] = [
    # cdi inject: the OCI spec's wrong-typed fields are named with the file, before any device lookup
    (
        "inject-env-str",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--spec-dir", "{d}/cdi", "{d}/env-str.json"],
        1,
        "{d}/env-str.json: process.env: must be a list, not a string",
    ),
    (
        "inject-env-int",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--spec-dir", "{d}/cdi", "{d}/env-int.json"],
        1,
        "{d}/env-int.json: process.env[0]: must be a string, not a number",
    ),
    (
        "inject-mounts-int",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--spec-dir", "{d}/cdi", "{d}/mounts-int.json"],
        1,
        "{d}/mounts-int.json: mounts[0]: must be an object",
    ),
    (
        "inject-list",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "{d}/list.json"],
        1,
        "{d}/list.json: an OCI spec must be a JSON object",
    ),
    (
        "inject-no-device",
        ["cdi", "inject", "--device", ",", "{d}/oci.json"],
        2,
        "--device: no device name given",
    ),
    (
        "inject-in-place-stdin",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--in-place", "-"],
        2,
        "--in-place needs a file, not stdin",
    ),
    (
        "inject-in-place-dir",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--in-place", "{d}/cdi"],
        1,
        "{d}/cdi: cannot read OCI spec: Is a directory",
    ),
    (
        "inject-deep",
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "{d}/deep.json"],
        1,
        "{d}/deep.json: invalid JSON: nested too deeply",
    ),
    # config
    ("config-deep", ["config", "-c", "{d}/deep.toml"], 1, "{d}/deep.toml: invalid TOML: nested too deeply"),
    ("config-json-in-place", ["config", "-c", "{d}/mode.toml", "--json", "--in-place"], 2, "--json"),
    ("config-output-dir", ["config", "-o", "{d}/cdi"], 1, "{d}/cdi: cannot write: is a directory"),
    (
        "config-output-no-parent",
        ["config", "-o", "{d}/nodir/config.toml"],
        1,
        "{d}/nodir/config.toml: cannot write: No such file or directory",
    ),
    (
        "config-output-full",
        ["config", "-o", "/dev/full"],
        1,
        "/dev/full: cannot write: No space left on device",
    ),
    (
        "config-empty-separator",
        ["config", "--set-list-separator", "", "--set", "nvidia-container-runtime.runtimes=a"],
        2,
        "--set-list-separator: must not be empty",
    ),
    (
        "config-table-is-string",
        ["config", "-c", "{d}/table-str.toml"],
        1,
        "{d}/table-str.toml: nvidia-container-runtime: expected a table",
    ),
    (
        "config-bad-mode",
        ["config", "-c", "{d}/mode.toml"],
        1,
        "{d}/mode.toml: nvidia-container-runtime.mode: 'bogus'",
    ),
    (
        "config-empty-prefix",
        ["config", "-c", "{d}/prefix.toml"],
        1,
        "{d}/prefix.toml: nvidia-container-runtime.modes.cdi.annotation-prefixes: an empty prefix",
    ),
    ("config-badutf8", ["config", "-c", "{d}/badutf8"], 1, "{d}/badutf8: invalid TOML"),
    # runtime configure / detect
    (
        "configure-docker-deep",
        ["runtime", "configure", "--runtime", "docker", "--config", "{d}/deep.json"],
        1,
        "{d}/deep.json: invalid JSON: nested too deeply",
    ),
    (
        "configure-containerd-deep",
        [
            "runtime",
            "configure",
            "--runtime",
            "containerd",
            "--config",
            "{d}/deep.toml",
            "--drop-in-config",
            "{d}/drop.toml",
            "--engine-version",
            "1.7.0",
        ],
        1,
        "{d}/deep.toml: invalid TOML: nested too deeply",
    ),
    (
        "detect-deep",
        [
            "runtime",
            "detect",
            "--runtime",
            "containerd",
            "--config",
            "{d}/deep.toml",
            "--no-dump",
            "--engine-version",
            "1.7.0",
        ],
        1,
        "{d}/deep.toml: cannot read engine config: invalid TOML: nested too deeply",
    ),
    # the default runtime's name given as an array: the file and key named, nothing written
    *[
        (
            f"configure-containerd-default-list{suffix}",
            [*CONFIGURE, "containerd", "--config", "{d}/ctd-default-list.toml", *extra],
            1,
            "{d}/ctd-default-list.toml: field plugins.io.containerd.grpc.v1.cri.containerd."
            "default_runtime_name: must be a string, not an array",
        )
        for suffix, extra in (
            ("", ["--drop-in-config", "", "--engine-version", "1.7.0"]),
            ("-drop-in", ["--drop-in-config", "{d}/conf.d/99-nvidia.toml", "--engine-version", "2.0.0"]),
            ("-set-as-default", ["--drop-in-config", "", "--engine-version", "1.7.0", "--set-as-default"]),
            ("-uninstall", ["--drop-in-config", "", "--engine-version", "1.7.0", "--uninstall"]),
        )
    ],
    (
        "configure-containerd-v1-default-list",
        [*CONFIGURE, "containerd", "--config", "{d}/ctd1-default-list.toml", "--engine-version", "1.5.0"],
        1,
        "{d}/ctd1-default-list.toml: field plugins.cri.containerd.default_runtime_name: "
        "must be a string, not an array",
    ),
    (
        "configure-crio-default-list",
        [*CONFIGURE, "crio", "--config", "{d}/crio-default-list.conf", "--drop-in-config", ""],
        1,
        "{d}/crio-default-list.conf: field crio.runtime.default_runtime: must be a string, not an array",
    ),
    # a non-UTF-8 byte on the command line (Python: a lone surrogate) cannot go into a UTF-8 file
    (
        "configure-name-not-utf8",
        [
            "runtime",
            "configure",
            "--runtime",
            "docker",
            "--config",
            "{d}/daemon.json",
            "--runtime-name",
            "gpu\udcff",
        ],
        2,
        "argument 'gpu\\udcff': not valid UTF-8",
    ),
    (
        "config-set-not-utf8",
        ["config", "--set", "nvidia-container-runtime.debug=/log\udcff", "-o", "{d}/out.toml"],
        1,
        "--set: nvidia-container-runtime.debug: not valid UTF-8",
    ),
    (
        "install-name-not-utf8",
        [
            "install",
            "--toolkit-dir",
            "{d}/tk",
            "--root",
            "{d}/root",
            "--runtime",
            "docker",
            "--engine-version",
            "25.0",
            "--runtime-name",
            "gpu\udcff",
            "--no-cdi-spec",
        ],
        2,
        "not valid UTF-8",
    ),
    # oci check / fix
    (
        "oci-check-deep",
        ["oci", "check", "--sandbox", "gvisor", "{d}/deep.json"],
        1,
        "{d}/deep.json: invalid JSON: nested too deeply",
    ),
    (
        "oci-runsc-config-deep",
        ["oci", "check", "--sandbox", "gvisor", "--runsc-config", "{d}/deep.toml", "{d}/oci.json"],
        1,
        "{d}/deep.toml: not valid TOML: nested too deeply",
    ),
    (
        "oci-driver-list-missing",
        ["oci", "check", "--sandbox", "gvisor", "--driver-list", "{d}/nofile", "{d}/oci.json"],
        1,
        "{d}/nofile: cannot read nvproxy driver list: No such file or directory",
    ),
    (
        "oci-driver-list-list",
        ["oci", "check", "--sandbox", "gvisor", "--driver-list", "{d}/driverlist-list.json", "{d}/oci.json"],
        1,
        "{d}/driverlist-list.json: expected a JSON object",
    ),
    (
        "oci-driver-list-date",
        ["oci", "check", "--sandbox", "gvisor", "--driver-list", "{d}/driverlist-date.json", "{d}/oci.json"],
        1,
        "{d}/driverlist-date.json: date: expected a string",
    ),
    (
        "oci-fix-in-place-stdin",
        ["oci", "fix", "--sandbox", "gvisor", "--in-place", "-"],
        2,
        "--in-place needs a file, not stdin",
    ),
    (
        "oci-fix-output-dir",
        ["oci", "fix", "--sandbox", "gvisor", "-o", "{d}/cdi", "{d}/oci.json"],
        1,
        "{d}/cdi: cannot write: is a directory",
    ),
    # k8s
    (
        "k8s-only-unknown",
        ["k8s", "manifests", "--only", "bogus", "--runtime-version", "containerd://1.7.12"],
        2,
        "--only: unknown manifest kind(s) bogus",
    ),
    (
        "k8s-runtime-version-bare",
        ["k8s", "plan", "--runtime-version", "containerd"],
        2,
        "--runtime-version: expected RUNTIME://VERSION",
    ),
    (
        "k8s-runtime-version-empty",
        ["k8s", "check-gpu", "--runtime-version", ""],
        2,
        "--runtime-version: expected RUNTIME://VERSION",
    ),
    (
        "k8s-pod-name",
        ["k8s", "pod-spec", "--gpus", "1", "--name", "Bad_Name", "--runtime-version", "containerd://1.7.12"],
        2,
        "--name: invalid pod name 'Bad_Name'",
    ),
    (
        "k8s-pod-namespace",
        ["k8s", "pod-spec", "--gpus", "1", "--namespace", "a b", "--runtime-version", "containerd://1.7.12"],
        2,
        "--namespace: invalid namespace 'a b'",
    ),
    (
        "k8s-node-name-list",
        ["k8s", "plan", "--from", "{d}/nodes.yaml"],
        1,
        "{d}/nodes.yaml: nodes[0].status.nodeInfo.containerRuntimeVersion: expected a string",
    ),
    (
        "k8s-from-deep",
        ["k8s", "plan", "--from", "{d}/deep.json"],
        1,
        "{d}/deep.json: not valid YAML/JSON: nested",
    ),
    (
        "k8s-from-surrogate",
        ["k8s", "plan", "--from", "{d}/nodes-surrogate.yaml"],
        1,
        "{d}/nodes-surrogate.yaml: not valid YAML/JSON: string n\\ud800 is a lone surrogate, not UTF-8",
    ),
    (
        "k8s-from-recursive-alias",
        ["k8s", "plan", "--from", "{d}/nodes-recursive.yaml"],
        1,
        "{d}/nodes-recursive.yaml: not valid YAML/JSON: nested too deeply",
    ),
    (
        "k8s-from-alias-bomb",
        ["k8s", "plan", "--from", "{d}/nodes-bomb.yaml"],
        1,
        "{d}/nodes-bomb.yaml: not valid YAML/JSON: more than 5000000 values after alias expansion",
    ),
    (
        "k8s-out-dir-clash",
        [
            "k8s",
            "manifests",
            "--runtime-version",
            "containerd://1.7.12",
            "--out-dir",
            "{d}",
            "--only",
            "device-plugin-values,runtimeclasses",
        ],
        1,
        "{d}/runtimeclasses.yaml: cannot write: is a directory",
    ),
    # snapshot / doctor
    (
        "snapshot-output-dir",
        [
            "snapshot",
            "--no-kubernetes",
            "-q",
            "--host-root",
            "{d}",
            "--nvidia-smi",
            "{d}/nofile",
            "--spec-dir",
            "{d}/cdi",
            "-o",
            "{d}/cdi",
        ],
        1,
        "{d}/cdi: cannot write: is a directory",
    ),
    (
        "doctor-gpu-int",
        ["doctor", "--from", "{d}/snap-gpu.yaml"],
        1,
        "{d}/snap-gpu.yaml: gpu: expected a mapping",
    ),
    (
        "doctor-gpus-item",
        ["doctor", "--from", "{d}/snap-gpus.yaml"],
        1,
        "{d}/snap-gpus.yaml: gpu.gpus[0]: expected",
    ),
    (
        "doctor-engines-item",
        ["doctor", "--from", "{d}/snap-engines.yaml"],
        1,
        "{d}/snap-engines.yaml: engines[0]",
    ),
    (
        "doctor-missing-link",
        ["doctor", "--from", "{d}/snap-missing.yaml"],
        1,
        "{d}/snap-missing.yaml: dev_char.missing[0].link: expected a string",
    ),
    # install / system
    (
        "install-bad-inventory",
        ["install", "--toolkit-dir", "{d}/tk", "--root", "{d}/root", "--inventory", "{d}/inventory.json"],
        1,
        "--inventory: ",
    ),
    (
        "install-empty-prefix",
        [
            "install",
            "--toolkit-dir",
            "{d}/tk",
            "--root",
            "{d}/root",
            "--annotation-prefix",
            "",
            "--no-cdi-spec",
        ],
        2,
        "--annotation-prefix: invalid prefix ''",
    ),
    (
        "install-relative-spec-dir",
        [
            "install",
            "--toolkit-dir",
            "{d}/tk",
            "--root",
            "{d}/root",
            "--cdi-spec-dir",
            "rel",
            "--no-cdi-spec",
        ],
        2,
        "--cdi-spec-dir: must be an absolute path",
    ),
    (
        "install-toolkit-dir-file",
        ["install", "--toolkit-dir", "{d}/oci.json", "--root", "{d}/root", "--no-cdi-spec"],
        1,
        "--toolkit-dir {d}/oci.json: not a directory",
    ),
    (
        "install-systemd-dir-file",
        [
            "install",
            "--toolkit-dir",
            "{d}/tk",
            "--root",
            "{d}/root",
            "--no-cdi-spec",
            "--systemd-dir",
            "{d}/oci.json/units",
        ],
        1,
        "{d}/oci.json/units/gpuctk-cdi-refresh.service: cannot write: {d}/oci.json is not a directory",
    ),
    (
        "system-dev-root-missing",
        ["system", "create-dev-char-symlinks", "--dev-root", "{d}/nodir"],
        2,
        "--dev-root {d}/nodir: not a directory",
    ),
    (
        "system-driver-root-missing",
        [
            "system",
            "create-dev-char-symlinks",
            "--dev-root",
            "{d}",
            "--load-kernel-modules",
            "--driver-root",
            "{d}/nodir",
        ],
        2,
        "--driver-root {d}/nodir: not a directory",
    ),
]


# --- CDI spec readers (one loader: gpuctk.cdi): `cdi transform root`, `doctor`/`snapshot` ---------
_TRANSFORM = ["cdi", "transform", "root", "--from", "/a", "--to", "/b", "--input"]
CASES += [
    (
        "transform-dev-zero",
        [*_TRANSFORM, "/dev/zero"],
        1,
        'failed to read CDI Spec "/dev/zero": not a regular file',
    ),
    ("transform-directory", [*_TRANSFORM, "{d}/cdi"], 1, 'failed to read CDI Spec "{d}/cdi": is a directory'),
    ("transform-missing", [*_TRANSFORM, "{d}/nofile.yaml"], 1, 'failed to read CDI Spec "{d}/nofile.yaml"'),
    ("transform-list", [*_TRANSFORM, "{d}/list.json"], 1, "(document): expected a mapping, got list"),
    ("transform-bad-utf8", [*_TRANSFORM, "{d}/badutf8"], 1, "not valid UTF-8"),
    ("transform-deep", [*_TRANSFORM, "{d}/deep.json"], 1, "nested too deeply"),
    ("transform-empty", [*_TRANSFORM, "{d}/empty"], 1, "no Spec data"),
    ("transform-not-a-spec", [*_TRANSFORM, "{d}/oci.json"], 1, 'unknown field "ociVersion"'),
]


def test_cdi_transform_fifo_is_one_line(tmp_path: Path) -> None:
    import subprocess

    from support.tools import venv_script

    os.mkfifo(tmp_path / "spec.yaml")  # no writer: a reader that opens it blocking hangs
    res = subprocess.run(
        [venv_script("gpuctk"), *_TRANSFORM, str(tmp_path / "spec.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and res.stdout == ""
    assert (
        res.stderr == f'gpuctk: error: failed to read CDI Spec "{tmp_path}/spec.yaml": not a regular file\n'
    )


_ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
)
BAD_SPEC_DIR: dict[str, str] = {
    "bomb.yaml": _ALIAS_BOMB,  # ~10^9 values after alias expansion
    "sexagesimal.yaml": GOOD_SPEC.replace("- path: /dev/null", "- path: /dev/null\n      major: 1:30"),
    "yaml12.yaml": "%YAML 1.2\n---\n" + GOOD_SPEC,
    "slash.json": '{"cdiVersion": "0.6.0", "kind": "nvidia.com\\/gpu", "devices": []}',
}


@pytest.mark.parametrize("command", ["doctor", "snapshot"])
def test_doctor_and_snapshot_with_a_bad_spec_dir(tmp_path: Path, command: str) -> None:
    """Every bad spec is reported with the runtime's reason; no hang, no traceback, no MemoryError;
    a .yml file is not a spec (the runtime ignores it too)."""
    import json
    import subprocess

    from support.tools import venv_script

    spec_dir = tmp_path / "root" / "etc" / "cdi"
    spec_dir.mkdir(parents=True)
    for name, text in BAD_SPEC_DIR.items():
        (spec_dir / name).write_text(text)
    (spec_dir / "good.yml").write_text(GOOD_SPEC)
    os.mkfifo(spec_dir / "fifo.yaml")
    os.symlink("/dev/zero", spec_dir / "zero.json")
    with open(spec_dir / "huge.json", "wb") as f:
        f.truncate(5 << 20)
    common = ["--host-root", str(tmp_path / "root"), "--spec-dir", "/etc/cdi"]
    if command == "doctor":
        argv = ["doctor", *common, "--output", "json"]
    else:
        argv = ["snapshot", *common, "--no-kubernetes", "--format", "json", "--output", "-"]
    env = {**os.environ, "PATH": str(tmp_path / "no-bin"), "GPUCTK_CONFIG_CACHE_DIR": ""}
    res = subprocess.run([venv_script("gpuctk"), *argv], capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    doc = json.loads(res.stdout)
    if command == "doctor":
        assert res.returncode == 1
        reasons = {
            c["message"].split(" is invalid: ")[0]: c["message"] for c in doc if c["name"] == "cdi-spec"
        }
    else:
        assert res.returncode == 0
        reasons = {s["path"]: " ".join(s["errors"]) for s in doc["cdi"]["specs"] if s["valid"] is False}
    expected = {
        "bomb.yaml": "alias expansion",
        "sexagesimal.yaml": 'expected an integer, got string "1:30"',
        "yaml12.yaml": "found incompatible YAML document",
        "slash.json": "found unknown escape character",
        "fifo.yaml": "not a regular file",
        "zero.json": "not a regular file",
        "huge.json": "limit",
    }
    assert set(reasons) == {f"/etc/cdi/{n}" for n in expected}, reasons
    for name, reason in expected.items():
        assert reason in reasons[f"/etc/cdi/{name}"], (name, reasons[f"/etc/cdi/{name}"])


# --- end of the CDI spec readers block ------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its content (None for directories)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.join(dirpath, name)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = f.read()
    return out


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, content in FIXTURES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    monkeypatch.setattr("sys.stdin", io.StringIO('{"process": {"env": []}}'))
    return tmp_path


@pytest.mark.parametrize(("argv", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(
    scratch: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    before = _tree(scratch)
    rc = main([a.replace("{d}", str(scratch)) for a in argv])
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.count("\n") == 1 and err.startswith("gpuctk: error: "), err
    assert message.replace("{d}", str(scratch)) in err
    assert _tree(scratch) == before  # nothing written, nothing half-written


def test_config_json_in_place_keeps_the_toml(scratch: Path) -> None:
    """`config --json -i` used to replace config.toml with JSON (which no reader then accepts)."""
    path = scratch / "ok.toml"
    path.write_text('[nvidia-container-runtime]\nmode = "cdi"\n')
    assert main(["config", "-c", str(path), "--json", "-i"]) == 2
    assert path.read_text() == '[nvidia-container-runtime]\nmode = "cdi"\n'


# ------------------------------------------------------------------ gpuctk-runtime (the shim)
SHIM_CASES: list[tuple[str, str | bytes | None, str]] = [
    ("missing", None, "{b}/config.json: OCI spec file not found"),
    ("invalid-json", '{"NVIDIA_', "{b}/config.json: invalid JSON"),
    ("not-object", '["NVIDIA_VISIBLE_DEVICES"]', "{b}/config.json: an OCI spec must be a JSON object"),
    ("invalid-utf8", b'\xff"NVIDIA_', "{b}/config.json: invalid JSON"),
    (
        "env-string",
        '{"process": {"env": "NVIDIA_VISIBLE_DEVICES=all"}}',
        "{b}/config.json: process.env: must be a list, not a string",
    ),
    (
        "env-item",
        '{"process": {"env": [1, "NVIDIA_VISIBLE_DEVICES=all"]}}',
        "{b}/config.json: process.env[0]: must be a string, not a number",
    ),
    (
        "annotations-list",
        '{"process": {"env": ["NVIDIA_VISIBLE_DEVICES=all"]}, "annotations": [1]}',
        "{b}/config.json: annotations: must be an object, not a list",
    ),
    (
        "annotation-value",
        '{"annotations": {"cdi.k8s.io/x": 5}}',
        "{b}/config.json: annotations.cdi.k8s.io/x: must be a string, not a number",
    ),
    (
        "mounts-object",
        '{"process": {"env": ["NVIDIA_VISIBLE_DEVICES=all"]}, "mounts": {"a": 1}}',
        "{b}/config.json: mounts: must be a list, not an object",
    ),
    (
        "prestart-number",
        '{"process": {"env": ["NVIDIA_VISIBLE_DEVICES=all"]}, "hooks": {"prestart": 5}}',
        "{b}/config.json: hooks.prestart: must be a list, not a number",
    ),
    (
        "deep",
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + ', "NVIDIA_VISIBLE_DEVICES": "all"}',
        "{b}/config.json: invalid JSON: nested too deeply",
    ),
    (
        "linux-devices-item",
        '{"process": {"env": ["NVIDIA_VISIBLE_DEVICES=all"]}, "linux": {"devices": [true]}}',
        "{b}/config.json: linux.devices[0]: must be an object, not a boolean",
    ),
]


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in SHIM_CASES], ids=[c[0] for c in SHIM_CASES])
def test_shim_bad_bundle_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    message: str,
) -> None:
    from gpuctk.runtime import main as shim

    cfg = tmp_path / "config.toml"
    cfg.write_text('[nvidia-container-runtime]\nruntimes = ["/bin/true"]\nmode = "legacy"\n')
    monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", str(cfg))
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    monkeypatch.setattr(shim, "_exec", lambda *a: pytest.fail("the low-level runtime was started"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if content is not None:
        (bundle / "config.json").write_bytes(content.encode() if isinstance(content, str) else content)
    before = _tree(bundle)
    assert shim.run(["gpuctk-runtime", "create", "--bundle", str(bundle), "cid"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert err.count("\n") == 1 and err.startswith("gpuctk-runtime: error: "), err
    assert message.replace("{b}", str(bundle)) in err
    assert _tree(bundle) == before


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('nvidia-container-runtime = "x"', "nvidia-container-runtime: expected a table"),
        (
            '[nvidia-container-runtime]\nruntimes = "runc"',
            "nvidia-container-runtime.runtimes: expected a list of strings",
        ),
        ("x = ", "invalid TOML"),
    ],
    ids=["table-is-string", "runtimes-string", "invalid-toml"],
)
def test_shim_bad_config_toml_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    toml: str,
    message: str,
) -> None:
    from gpuctk.runtime import main as shim

    cfg = tmp_path / "config.toml"
    cfg.write_text(toml + "\n")
    monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", str(cfg))
    monkeypatch.setenv("GPUCTK_CONFIG_CACHE_DIR", "")
    monkeypatch.setattr(shim, "_exec", lambda *a: pytest.fail("the low-level runtime was started"))
    assert shim.run(["gpuctk-runtime", "create", "--bundle", str(tmp_path), "cid"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gpuctk-runtime: error: {cfg}: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_configure_failure_restores_the_files_already_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """containerd: the drop-in is written, then the main config (its `imports`) fails: the drop-in
    is removed again and no backup is left, instead of half a configuration."""
    import gpuctk.engines.apply as engine_apply

    config, drop_in = tmp_path / "config.toml", tmp_path / "conf.d" / "99-nvidia.toml"
    config.write_text("version = 2\n")
    real = engine_apply.atomic_write

    def fail_on_config(path: str, *args: object, **kwargs: object) -> None:
        if path == str(config):
            raise OSError(28, "No space left on device")
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_apply, "atomic_write", fail_on_config)
    rc = main(
        [
            "runtime",
            "configure",
            "--runtime",
            "containerd",
            "--config",
            str(config),
            "--drop-in-config",
            str(drop_in),
            "--engine-version",
            "1.7.0",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert err == (
        f"gpuctk: error: {config}: cannot write: No space left on device; "
        "the files already written were restored\n"
    )
    assert config.read_text() == "version = 2\n"
    assert not drop_in.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.d", "config.toml"]  # no backup left


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_configure_refuses_a_device_as_engine_config(device: str, capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/zero used to be read until memory ran out; /dev/null got a backup file beside it in /dev."""
    assert main(["runtime", "configure", "--runtime", "docker", "--config", device]) == 1
    assert capsys.readouterr().err == f"gpuctk: error: {device}: not a regular file, expected a config file\n"
    assert not [name for name in os.listdir("/dev") if ".gpuctk-backup-" in name]


# ---------------------------------------------------------------- hostile input, per input kind
# Issue 17: every user-supplied file of every kind, as a FIFO with no writer, a device, a huge
# (sparse) file, deep nesting, a huge integer, invalid UTF-8, a lone surrogate and a NUL byte:
# exit 1 with one line naming the file, no hang, no traceback, nothing written. The FIFO and
# device cases live here, apart from FIXTURES above, which _tree reads whole.
HUGE = 100 << 20  # over every reader's cap (64 MiB, 4 MiB for engine configs)

JSON_BODIES: dict[str, bytes] = {
    "deep": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "bigint": b'{"a": ' + b"1" * 5000 + b"}\n",
    "badutf8": b'{"a": "\xff\xfe"}\n',
    "surrogate": b'{"a": "\\ud800"}\n',
    "nul": b'{"a": "x\x00"}\n',
}
YAML_BODIES: dict[str, bytes] = {
    "deep": b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "bigint": b"a: " + b"1" * 5000 + b"\n",
    "badutf8": b"a: \xff\xfe\n",
    "surrogate": b'a: "\\ud800"\n',
    "nul": b"a: x\x00\n",
}
TOML_BODIES: dict[str, bytes] = {
    "deep": b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "bigint": b"a = " + b"1" * 5000 + b"\n",
    "badutf8": b'a = "\xff\xfe"\n',
    "surrogate": b'a = "\\ud800"\n',
    "nul": b'a = "x\x00"\n',
    "headers": b"".join(b"[" + b".".join([b"a"] * 40) + b".x%d]\n" % i for i in range(2000)),
    "keys": b"[crio.runtime]\n" + b"".join(b"k%d = %d\n" % (i, i) for i in range(5000)),
}
CSV_BODIES: dict[str, bytes] = {"badutf8": b"lib, /usr/lib/\xff\xfe.so\n", "nul": b"lib, /usr/lib/x\x00.so\n"}


# kind: (file name, bodies, argv with {f} = the hostile file and {d} = a scratch dir)
KINDS: dict[str, tuple[str, dict[str, bytes], list[str]]] = {
    "cdi-json": ("spec.json", JSON_BODIES, ["cdi", "validate", "{f}"]),
    "cdi-yaml": ("spec.yaml", YAML_BODIES, ["cdi", "validate", "{f}"]),
    "config-toml": ("config.toml", TOML_BODIES, ["config", "-c", "{f}"]),
    "config-toml-in-place": ("config.toml", TOML_BODIES, ["config", "-c", "{f}", "--in-place"]),
    "containerd": (
        "config.toml",
        TOML_BODIES,
        [*CONFIGURE, "containerd", "--config", "{f}", "--drop-in-config", "", "--engine-version", "1.7.0"],
    ),
    "containerd-drop-in": (
        "config.toml",
        TOML_BODIES,
        [
            *CONFIGURE,
            "containerd",
            "--config",
            "{f}",
            "--drop-in-config",
            "{d}/conf.d/99-nvidia.toml",
            "--engine-version",
            "1.7.0",
        ],
    ),
    "crio": (
        "crio.conf",
        TOML_BODIES,
        ["runtime", "configure", "--runtime", "crio", "--config", "{f}", "--drop-in-config", ""],
    ),
    "install-config-toml": (
        "config.toml",
        TOML_BODIES,
        ["install", "--toolkit-dir", "{d}/tk", "--root", "{d}/root", "--no-cdi-spec", "--config-file", "{f}"],
    ),
    "docker": (
        "daemon.json",
        JSON_BODIES,
        ["runtime", "configure", "--runtime", "docker", "--config", "{f}"],
    ),
    "csv": (
        "mounts.csv",
        CSV_BODIES,
        ["cdi", "generate", "--mode", "csv", "--csv.file", "{f}", "--driver-root", "{d}"],
    ),
    # read-only; the file itself, not `containerd config dump` (test_detect_refuses_a_fifo_before_the_dump)
    "detect-containerd": (
        "config.toml",
        TOML_BODIES,
        [
            "runtime",
            "detect",
            "--runtime",
            "containerd",
            "--config",
            "{f}",
            "--no-dump",
            "--engine-version",
            "1.7.0",
        ],
    ),
    "detect-docker": (
        "daemon.json",
        JSON_BODIES,
        ["runtime", "detect", "--runtime", "docker", "--config", "{f}", "--engine-version", "25.0"],
    ),
    "inventory": ("inventory.json", JSON_BODIES, ["cdi", "generate", "--inventory", "{f}"]),
    "k8s-plan-from": ("nodes.yaml", YAML_BODIES, ["k8s", "plan", "--from", "{f}"]),
    "doctor-from": ("snapshot.yaml", YAML_BODIES, ["doctor", "--from", "{f}"]),
    "oci-inject": (
        "config.json",
        JSON_BODIES,
        ["cdi", "inject", "--device", "nvidia.com/gpu=0", "--spec-dir", "{d}/cdi", "{f}"],
    ),
    # "<{f}": the file is the command's standard input
    "hook-state": ("state.json", JSON_BODIES, ["hook", "create-symlinks", "--link", "/x::/y", "<{f}"]),
    "oci-check": ("config.json", JSON_BODIES, ["oci", "check", "--sandbox", "gvisor", "{f}"]),
}
SPECIAL = ("fifo", "dev-zero", "dev-urandom", "huge")


def _hostile_rows() -> list[Any]:
    rows = []
    for kind, (_, bodies, _) in KINDS.items():
        for variant in (*SPECIAL, *bodies):
            rows.append(pytest.param(kind, variant, id=f"{kind}-{variant}"))
    return rows


def _make_hostile(path: Path, variant: str, bodies: dict[str, bytes]) -> None:
    if variant == "fifo":
        os.mkfifo(path)
    elif variant == "dev-zero":
        path.symlink_to("/dev/zero")
    elif variant == "dev-urandom":
        path.symlink_to("/dev/urandom")
    elif variant == "huge":
        with open(path, "wb") as f:
            f.truncate(HUGE)  # sparse: no disk used, but every byte a NUL
    else:
        path.write_bytes(bodies[variant])


def _run_contained(argv: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[int | None, str]:
    """``main(argv)`` in a forked child with a 30 s alarm and a 2 GiB address-space limit (a
    reader that hangs on a FIFO or eats /dev/zero fails its row, not the test run); returns
    (exit code, or None when it hung or was killed; stderr)."""
    import resource
    import signal

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 98
        try:
            os.close(r)
            os.environ.update(env)
            if stdin is not None:  # a FIFO without a writer must not block the test's own open
                import fcntl

                fd = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK)
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
                os.dup2(fd, 0)
                sys_stdin = os.fdopen(0, "r")
                import sys as _sys

                _sys.stdin = sys_stdin
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
            signal.alarm(30)  # SIGALRM's default action ends the child
            os.dup2(w, 1)
            os.dup2(w, 2)
            import sys

            sys.stderr = os.fdopen(2, "w", buffering=1)
            sys.stdout = os.fdopen(1, "w", buffering=1)  # `cdi validate` reports on stdout
            code = main(argv)
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    err = b"".join(chunks).decode("utf-8", "replace")
    return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else None), err


def _stat_tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under root with its mode, size and mtime (no reads: a FIFO must not be opened)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            # a directory's mtime changes with a lock file taken and removed again: not compared
            mtime = 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, mtime)
    return out


@pytest.mark.parametrize(("kind", "variant"), _hostile_rows())
def test_hostile_input_kind_is_one_line(tmp_path: Path, kind: str, variant: str) -> None:
    name, bodies, argv = KINDS[kind]
    d = tmp_path / "d"
    (d / "cdi").mkdir(parents=True)
    (d / "cdi" / "nvidia.yaml").write_text(GOOD_SPEC)
    f = d / name
    _make_hostile(f, variant, bodies)
    env = {"NVIDIA_CTK_CONFIG_FILE_PATH": str(tmp_path / "absent.toml"), "GPUCTK_CONFIG_CACHE_DIR": ""}
    before = _stat_tree(tmp_path)
    stdin = str(f) if argv[-1] == "<{f}" else None
    argv = argv[:-1] if stdin else argv
    rc, err = _run_contained([a.replace("{f}", str(f)).replace("{d}", str(d)) for a in argv], env, stdin)
    assert rc is not None, f"{kind} {variant}: hung or ran out of memory"
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc == 1, err
    assert err.count("\n") == 1, err
    prefix = {"validate": f"{f}: ", "hook": "gpuctk hook: error: "}.get(
        argv[1] if argv[0] == "cdi" else argv[0]
    )
    assert err.startswith(prefix or "gpuctk: error: "), err
    assert (str(f) in err or name in err) if not stdin else "OCI state on stdin" in err, err
    assert _stat_tree(tmp_path) == before  # nothing written, no backup, no temp file


def test_detect_refuses_a_fifo_before_the_dump(tmp_path: Path) -> None:
    """`runtime detect --config FIFO` with containerd installed: the FIFO is refused before
    `containerd --config FIFO config dump` runs (containerd itself would block on it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "containerd.argv"
    stub = bin_dir / "containerd"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\necho "version = 2"\n')
    stub.chmod(0o755)
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GPUCTK_CONFIG_CACHE_DIR": ""}
    argv = [
        "runtime",
        "detect",
        "--runtime",
        "containerd",
        "--config",
        str(fifo),
        "--engine-version",
        "1.7.0",
    ]
    rc, err = _run_contained(argv, env)
    assert (rc, err) == (1, f"gpuctk: error: {fifo}: cannot read engine config: not a regular file: a FIFO\n")
    assert not log.exists()  # the engine was never handed the FIFO
    (tmp_path / "regular.toml").write_text("version = 2\n")
    argv[5] = str(tmp_path / "regular.toml")
    rc, err = _run_contained(argv, env)
    assert rc == 0, err
    assert log.read_text() == f"--config {tmp_path}/regular.toml config dump\n"  # the stub is the one run


# ------------------------------------------------- config.toml with unknown keys (issue 12)
# A key of an older upstream release, a typo of a known key, a table of a newer release: on the
# container path each is one warning in the runtime's log, never a failure (upstream ignores
# unknown keys). Real runc: tests/integration/test_runtime_e2e.py.
UNKNOWN_KEYS = (
    "nvidia-container-runtime.experimental",
    "nvidia-container-runtime.log-levle",
    "nvidia-container-runtime.future",
)
_STUB_RUNTIME = '#!/bin/sh\nprintf "%s\\n" "$@" > "{out}"\n'


@pytest.mark.parametrize("request_env", [["NVIDIA_VISIBLE_DEVICES=all"], []], ids=["gpu", "plain"])
def test_installed_shim_runs_the_container_with_unknown_config_keys_and_logs_them(
    tmp_path: Path, request_env: list[str]
) -> None:
    import json
    import subprocess

    from support.tools import venv_script

    out = tmp_path / "stub.argv"
    stub = tmp_path / "bin" / "stub-runc"
    stub.parent.mkdir()
    stub.write_text(_STUB_RUNTIME.format(out=out))
    stub.chmod(0o755)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[nvidia-container-runtime]\n"
        f'runtimes = ["{stub}"]\n'
        'mode = "legacy"\n'
        "experimental = false\n"  # upstream's older releases had it
        'log-levle = "info"\n'  # a typo of log-level
        "[nvidia-container-runtime.future]\n"  # a table of a newer release
        "x = 1\n"
    )
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = {"ociVersion": "1.0.2", "process": {"args": ["sh"], "env": ["PATH=/bin", *request_env]}}
    (bundle / "config.json").write_text(json.dumps(spec))
    log = tmp_path / "runc.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NVIDIA_", "XDG_CONFIG", "GPUCTK_"))}
    env.update({"NVIDIA_CTK_CONFIG_FILE_PATH": str(cfg), "GPUCTK_CONFIG_CACHE_DIR": ""})
    argv = ["--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle), "cid"]
    res = subprocess.run(
        [venv_script("gpuctk-runtime"), *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "error" not in res.stderr, res.stderr
    assert out.read_text().splitlines() == argv  # the low-level runtime created the container
    edited = json.loads((bundle / "config.json").read_text())
    if request_env:  # the GPU container got its hook: the config was used, not skipped
        assert edited["hooks"]["prestart"], edited
    else:
        assert edited == spec
    warnings = [e["msg"] for e in map(json.loads, log.read_text().splitlines()) if e["level"] == "warning"]
    assert sorted(warnings) == sorted(f"{cfg}: unknown key {key!r} (ignored)" for key in UNKNOWN_KEYS)
