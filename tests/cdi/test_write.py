"""Writing specs: format, minimum version, hostPath omission, atomicity, mode, golden files."""

import json
import os
import stat
from typing import Any

import pytest

from gpuctk.cdi import CDIError, Spec, load_spec, write_spec
from gpuctk.cdi.yamlio import load_yaml
from support.golden import UPDATE

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "data", "cdi", "golden")

DOC: dict[str, Any] = {
    "cdiVersion": "1.1.0",
    "kind": "example.com/gpu",
    "containerEdits": {
        "env": ["NVIDIA_VISIBLE_DEVICES=void"],
        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/hook", "args": ["hook", "x"]}],
    },
    "devices": [
        {
            "name": "gpu0",
            "containerEdits": {
                "deviceNodes": [
                    {
                        "path": "/dev/gpu0",
                        "hostPath": "/dev/gpu0",
                        "type": "c",
                        "major": 195,
                        "minor": 0,
                        "fileMode": 438,
                    }
                ],
                "mounts": [
                    {
                        "hostPath": "/usr/lib/libx.so.1",
                        "containerPath": "/usr/lib/libx.so.1",
                        "options": ["ro", "nosuid", "nodev", "bind"],
                    }
                ],
                "env": ["ODD=yes", "NUM=0666", "T=1:30", "Y=y"],
            },
        },
        {"name": "all", "containerEdits": {"env": ["ALL=1", "y"[:0] + "Q=<&>"]}},
    ],
}


def check_golden(name, text):
    path = os.path.join(GOLDEN, name)
    if UPDATE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{name} differs from its golden file (GPUCTK_UPDATE_GOLDEN=1 regenerates)"


@pytest.mark.parametrize("ext", ["json", "yaml"])
def test_write_golden_and_reload(tmp_path, ext):
    path = tmp_path / f"example.{ext}"
    write_spec(DOC, str(path))
    text = path.read_text()
    check_golden(f"example.{ext}", text)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    spec = load_spec(str(path))
    assert spec.version == "0.3.0"  # minimum version: hostPath == path was dropped
    node = spec.devices[0].container_edits["deviceNodes"][0]
    assert "hostPath" not in node
    assert spec.devices[0].container_edits["env"] == ["ODD=yes", "NUM=0666", "T=1:30", "Y=y"]
    expected = Spec.from_dict(DOC).to_dict()
    expected["cdiVersion"] = "0.3.0"
    del expected["devices"][0]["containerEdits"]["deviceNodes"][0]["hostPath"]
    assert spec.to_dict() == expected


def test_yaml_quotes_what_go_yaml_would_reinterpret(tmp_path):
    words = [
        "y",
        "N",
        "on",
        "0o17",
        "0X1F",
        "1e5",
        "+1",
        ".5",
        "1_000",
        "~",
        "null",
        "<<",
        "0b1",
        "08",
        "1:30",
        "true",
        "",
        "-",
        "a: b",
        "#x",
        "@x",
        "'q'",
    ]
    doc = {
        "cdiVersion": "0.3.0",
        "kind": "a.com/b",
        "devices": [
            {
                "name": "d",
                "containerEdits": {
                    "env": ["A=1"],
                    "hooks": [{"hookName": "prestart", "path": "/h", "args": words}],
                },
            }
        ],
    }
    path = tmp_path / "q.yaml"
    write_spec(doc, str(path))
    assert load_yaml(path.read_text())["devices"][0]["containerEdits"]["hooks"][0]["args"] == words  # type: ignore[index]


def test_forced_version_and_too_low_version(tmp_path):
    path = tmp_path / "v.json"
    write_spec(DOC, str(path), version="1.1.0")
    assert json.loads(path.read_text())["cdiVersion"] == "1.1.0"
    doc = json.loads(json.dumps(DOC))
    doc["devices"][1]["containerEdits"]["additionalGids"] = [5]
    with pytest.raises(CDIError, match=r"at least v0\.7\.0"):
        write_spec(doc, str(tmp_path / "low.json"), version="0.6.0")
    assert not (tmp_path / "low.json").exists()


def test_invalid_spec_never_written(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("original")
    with pytest.raises(CDIError, match="no devices"):
        write_spec({"cdiVersion": "0.3.0", "kind": "vendor.com/device", "devices": []}, str(path))
    with pytest.raises(CDIError, match="invalid vendor"):
        write_spec(
            {"kind": "vendor1.comdevice", "devices": [{"name": "d", "containerEdits": {"env": ["A=1"]}}]},
            str(path),
        )
    assert path.read_text() == "original"
    assert os.listdir(tmp_path) == ["bad.yaml"]  # no temp file left behind


def test_format_argument_and_unknown_extension(tmp_path):
    with pytest.raises(CDIError, match="cannot tell the format"):
        write_spec(DOC, str(tmp_path / "spec.txt"))
    write_spec(DOC, str(tmp_path / "spec.txt"), format="yaml")
    assert (tmp_path / "spec.txt").read_text().startswith("---\n")


def test_write_keeps_mode_0644_over_existing_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    write_spec(DOC, str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_write_spec_object_and_creates_dir(tmp_path):
    s = Spec.from_dict(DOC)
    target = tmp_path / "new" / "dir" / "s.yaml"
    write_spec(s, str(target))
    assert load_spec(str(target)).devices[1].name == "all"


def test_example_inject_golden():
    """The shipped example (used by the demo) injects to a stable, reviewed result."""
    from gpuctk.cdi import Registry

    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "cdi")
    with open(os.path.join(examples, "config.json")) as f:
        oci = json.load(f)
    reg = Registry([os.path.join(examples, "specs")])
    assert reg.errors() == {}
    reg.inject_devices(oci, ["example.com/gpu=gpu0", "example.com/gpu=gpu1"])
    check_golden("inject-example.json", json.dumps(oci, indent=2) + "\n")


def test_lone_surrogate_is_refused_like_go_and_never_written(tmp_path):
    """go-yaml v2 (which Go consumers parse JSON specs with) refuses a surrogate \\u escape:
    reading refuses it too, and writing never produces one (a dict holding one is refused)."""
    import pytest

    from gpuctk.cdi import CDIError, load_spec, write_spec

    src = tmp_path / "in.json"
    src.write_text(
        '{"cdiVersion":"0.5.0","kind":"a.com/b","devices":[{"name":"x","containerEdits":'
        '{"env":["A=\\ud800","B=\u00e9"]}}]}'
    )
    with pytest.raises(CDIError, match=r"invalid Unicode character escape code \\ud800"):
        load_spec(str(src))
    spec: dict[str, Any] = {
        "cdiVersion": "0.5.0",
        "kind": "a.com/b",
        "devices": [{"name": "x", "containerEdits": {"env": ["A=\ud800", "B=\U0001f600\x7f"]}}],
    }
    with pytest.raises(CDIError, match="lone UTF-16 surrogate"):
        write_spec(spec, str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()
    spec["devices"][0]["containerEdits"]["env"] = ["B=\U0001f600\x7f"]
    write_spec(spec, str(tmp_path / "out.json"))
    raw = (tmp_path / "out.json").read_bytes()
    assert "\U0001f600".encode() in raw and b"\\u007f" in raw and b"\\ud83d" not in raw
    assert load_spec(str(tmp_path / "out.json")).devices[0].container_edits["env"] == ["B=\U0001f600\x7f"]
