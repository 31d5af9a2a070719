"""`gpuctk cdi validate|list|inject` in subprocesses: output, exit codes, no tracebacks,
and the stdlib-only import path for JSON specs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from support.tools import venv_script

HERE = os.path.dirname(__file__)
DATA = os.path.join(HERE, "..", "data", "cdi")
VECTORS = os.path.join(DATA, "vectors")


def gpuctk(*args, stdin=None):
    p = subprocess.run(
        [venv_script("gpuctk"), "cdi", *args], capture_output=True, text=True, input=stdin, timeout=60
    )
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    return p


def vector_files(kind):
    d = os.path.join(VECTORS, kind)
    return sorted(os.path.join(d, f) for f in os.listdir(d))


@pytest.mark.parametrize("path", vector_files("valid"), ids=os.path.basename)
def test_validate_accepts_valid_vectors(path):
    p = gpuctk("validate", path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("path", vector_files("invalid"), ids=os.path.basename)
def test_validate_rejects_invalid_vectors(path):
    p = gpuctk("validate", path)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines and all(line.startswith(path + ": ") for line in lines)
    with open(path, "rb") as f:
        first = f.readline().decode()
    if first.startswith("# expect: "):  # the vector names the message it must produce
        assert first[len("# expect: ") :].strip() in p.stdout


def test_validate_min_version_matches_vectors():
    d = os.path.join(VECTORS, "min-version")
    files = sorted(os.listdir(d))
    p = gpuctk("validate", "--min-version", *[os.path.join(d, f) for f in files])
    assert p.returncode == 0, p.stdout
    got = dict(line.rsplit(": minimum version ", 1) for line in p.stdout.splitlines())
    for f in files:
        expected = f.split("_", 1)[0]  # files are named <min-version>_<label>.yaml
        assert got[os.path.join(d, f)] == expected, f


def test_validate_json_output_and_several_files(tmp_path):
    good = os.path.join(VECTORS, "valid", vector_files("valid")[0])
    bad = tmp_path / "bad.yaml"
    bad.write_text("cdiVersion: 0.3.0\nkind: v.com/d\ndevices: [{name: d, containerEdits: {env: [X]}}]\n")
    p = gpuctk("validate", "--json", good, str(bad))
    assert p.returncode == 1
    res = {r["file"]: r for r in json.loads(p.stdout)["files"]}
    assert res[good]["valid"] is True and res[str(bad)]["valid"] is False
    assert res[str(bad)]["problems"] == ['devices[0].containerEdits.env[0]: invalid environment variable "X"']
    assert res[str(bad)]["minimum_version"] == "0.3.0"


def _one_line_error(p, *needles):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    text = (p.stdout + p.stderr).strip()
    assert text.count("\n") == 0, text
    for n in needles:
        assert n in text, text


def test_bad_input_one_clear_line(tmp_path):
    cases = {
        "malformed.yaml": ("cdiVersion: [\n", "YAML"),
        "malformed.json": ('{"cdiVersion": ', "JSON"),
        "types.yaml": (
            "cdiVersion: 0.3.0\nkind: v.com/d\ndevices: [{name: d, containerEdits: {deviceNodes: "
            "[{path: /dev/x, major: abc}]}}]\n",
            "major: expected an integer",
        ),
        "relative.yaml": (
            "cdiVersion: 0.3.0\nkind: v.com/d\ndevices: [{name: d, containerEdits: {mounts: "
            "[{hostPath: /a, containerPath: rel}]}}]\n",
            "not absolute",
        ),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_text(content)
        _one_line_error(gpuctk("validate", str(tmp_path / name)), str(tmp_path / name), needle)
    # a directory where a file is expected, a FIFO, a dangling symlink, a symlink loop
    (tmp_path / "dir.yaml").mkdir()
    _one_line_error(gpuctk("validate", str(tmp_path / "dir.yaml")), "is a directory")
    os.mkfifo(tmp_path / "fifo.yaml")
    _one_line_error(gpuctk("validate", str(tmp_path / "fifo.yaml")), "not a regular file")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.yaml")
    _one_line_error(gpuctk("validate", str(tmp_path / "dangling.yaml")), "No such file")
    os.symlink(tmp_path / "loop.yaml", tmp_path / "loop.yaml")
    _one_line_error(gpuctk("validate", str(tmp_path / "loop.yaml")), "symbolic links")
    # a symlink to a valid spec is read like the reference does
    os.symlink(vector_files("valid")[0], tmp_path / "link.yaml")
    assert gpuctk("validate", str(tmp_path / "link.yaml")).returncode == 0


def test_ten_mib_spec(tmp_path):
    big = tmp_path / "big.json"
    dev = {"name": "d", "containerEdits": {"env": ["A=" + "x" * (10 << 20)]}}
    big.write_text(json.dumps({"cdiVersion": "0.3.0", "kind": "v.com/d", "devices": [dev]}))
    _one_line_error(gpuctk("validate", str(big)), "MiB limit")
    spec_dir = tmp_path / "dir"
    spec_dir.mkdir()
    os.rename(big, spec_dir / "big.json")
    p = gpuctk("list", "--spec-dir", str(spec_dir))
    assert p.returncode == 0 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "MiB limit" in p.stderr


def test_usage_errors_exit_2(tmp_path):
    assert gpuctk("validate").returncode == 2
    assert gpuctk("inject", str(tmp_path / "c.json")).returncode == 2  # --device is required
    assert gpuctk("bogus").returncode == 2


def write_example_dirs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "vendor.yaml").write_text(
        textwrap.dedent("""\
        cdiVersion: 0.3.0
        kind: vendor.com/device
        containerEdits:
          env: [GLOBAL=1]
        devices:
          - name: dev1
            containerEdits:
              env: [DEV1=1]
              deviceNodes: [{path: /dev/vendor1, type: c, major: 10, minor: 200}]
          - name: dev2
            containerEdits:
              env: [DEV2=1]
        """)
    )
    (etc / "broken.yaml").write_text("kind: [\n")
    return etc


def test_list_text_and_json(tmp_path):
    etc = write_example_dirs(tmp_path)
    p = gpuctk("list", "--spec-dir", str(etc))
    assert p.returncode == 0
    assert p.stdout.splitlines() == ["vendor.com/device=dev1", "vendor.com/device=dev2"]
    assert p.stderr.startswith(f"gpuctk: warning: {etc / 'broken.yaml'}: ") and p.stderr.count("\n") == 1
    p = gpuctk("list", "--spec-dir", str(etc), "--spec-dir", str(tmp_path / "missing"), "--json")
    doc = json.loads(p.stdout)
    assert [d["name"] for d in doc["devices"]] == ["vendor.com/device=dev1", "vendor.com/device=dev2"]
    assert doc["devices"][0]["spec"] == str(etc / "vendor.yaml")
    assert list(doc["errors"]) == [str(etc / "broken.yaml")]


def test_inject_stdout_in_place_and_unresolvable(tmp_path):
    etc = write_example_dirs(tmp_path)
    config = tmp_path / "config.json"
    original = {"ociVersion": "1.0.2", "process": {"env": ["PATH=/bin"]}, "x-unknown": {"kept": True}}
    config.write_text(json.dumps(original))
    p = gpuctk(
        "inject",
        "--spec-dir",
        str(etc),
        "--device",
        "vendor.com/device=dev1,vendor.com/device=dev2",
        str(config),
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["process"]["env"] == ["PATH=/bin", "GLOBAL=1", "DEV1=1", "DEV2=1"]
    assert out["linux"]["devices"] == [{"path": "/dev/vendor1", "type": "c", "major": 10, "minor": 200}]
    assert out["x-unknown"] == {"kept": True}
    assert json.loads(config.read_text()) == original  # stdout mode leaves the file alone

    p = gpuctk(
        "inject",
        "--spec-dir",
        str(etc),
        "--device",
        "vendor.com/device=dev9",
        "--device",
        "vendor.com/device=dev1",
        "--in-place",
        str(config),
    )
    assert p.returncode == 1
    assert "gpuctk: error: unresolvable CDI devices vendor.com/device=dev9" in p.stderr
    assert "Traceback" not in p.stderr
    assert json.loads(config.read_text()) == original  # nothing applied

    os.chmod(config, 0o640)
    p = gpuctk(
        "inject", "--spec-dir", str(etc), "--device", "vendor.com/device=dev2", "--in-place", str(config)
    )
    assert p.returncode == 0 and p.stdout == ""
    assert json.loads(config.read_text())["process"]["env"] == ["PATH=/bin", "GLOBAL=1", "DEV2=1"]
    assert os.stat(config).st_mode & 0o777 == 0o640

    p = gpuctk(
        "inject",
        "--spec-dir",
        str(etc),
        "--device",
        "vendor.com/device=dev2",
        "-",
        stdin=json.dumps(original),
    )
    assert json.loads(p.stdout)["process"]["env"][-1] == "DEV2=1"


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "No such file"), ("{not json", "invalid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_inject_bad_config(tmp_path, content, needle):
    etc = write_example_dirs(tmp_path)
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    p = gpuctk("inject", "--spec-dir", str(etc), "--device", "vendor.com/device=dev2", str(config))
    _one_line_error(p, needle)


def test_import_and_json_load_are_stdlib_only(tmp_path):
    """`import gpuctk.cdi` plus loading, resolving and injecting JSON specs pulls no third-party module."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "v.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.3.0",
                "kind": "v.com/d",
                "devices": [
                    {"name": "d", "containerEdits": {"env": ["A=1"], "deviceNodes": [{"path": "/dev/null"}]}}
                ],
            }
        )
    )
    code = textwrap.dedent(f"""
        import sys
        before = set(sys.modules)
        import gpuctk.cdi
        reg = gpuctk.cdi.Registry([{str(etc)!r}])
        oci = {{}}
        reg.inject_devices(oci, ["v.com/d=d"])
        assert oci["process"]["env"] == ["A=1"]
        std = set(sys.stdlib_module_names)
        extra = sorted(m for m in set(sys.modules) - before
                       if m.split(".")[0] not in std and m.split(".")[0] != "gpuctk")
        print(",".join(extra))
        """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""
