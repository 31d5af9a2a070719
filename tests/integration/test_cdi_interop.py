"""A spec written by gpuctk is consumed by podman, and the same device injected by
`gpuctk cdi inject` into a runc bundle is visible in the running container."""

import json
import os
import subprocess

import pytest

from gpuctk.cdi import write_spec
from support.containers import make_bundle, mknod_char, podman_run, runc_run
from support.tools import require_root, require_tool, venv_script

pytestmark = pytest.mark.integration

KIND = "gpuctk-test.example.com/interop"
MAJOR, MINOR = 195, 7  # NVIDIA's major; nothing on this host opens it, we only stat it
CHECK = (
    "stat -c '%F %t:%T' /dev/gpuctk-cdi0; echo \"env=$GPUCTK_CDI_TEST\"; cat /etc/gpuctk-cdi.txt; "
    'echo "spec=$GPUCTK_CDI_SPEC"'
)


@pytest.fixture
def cdi_setup(tmp_path):
    require_root()
    host_dev = mknod_char(str(tmp_path / "hostdev" / "gpuctk-cdi0"), MAJOR, MINOR)
    host_file = tmp_path / "payload.txt"
    token = f"gpuctk-cdi-payload-{os.getpid()}"
    host_file.write_text(token + "\n")
    spec_dir = tmp_path / "cdi"
    spec = {
        "cdiVersion": "1.1.0",  # write_spec lowers it to the minimum (0.5.0: hostPath), which podman 4.3 reads
        "kind": KIND,
        "containerEdits": {"env": ["GPUCTK_CDI_SPEC=global"]},
        "devices": [
            {
                "name": "dev0",
                "containerEdits": {
                    "env": ["GPUCTK_CDI_TEST=hello-from-cdi"],
                    "deviceNodes": [
                        {"path": "/dev/gpuctk-cdi0", "hostPath": host_dev}
                    ],  # type/major from the host
                    "mounts": [
                        {
                            "hostPath": str(host_file),
                            "containerPath": "/etc/gpuctk-cdi.txt",
                            "options": ["ro", "nosuid", "nodev", "bind"],
                        }
                    ],
                },
            }
        ],
    }
    path = spec_dir / "gpuctk-interop.yaml"
    write_spec(spec, str(path))
    return {"spec_dir": str(spec_dir), "spec_path": str(path), "token": token}


def expected_output(token):
    return ["character special file", f"{MAJOR:x}:{MINOR:x}", "env=hello-from-cdi", token, "spec=global"]


def parse(stdout):
    first, rest = stdout.split("\n", 1)
    kind, devno = first.rsplit(" ", 1)
    return [kind, devno, *rest.split()]


def test_podman_consumes_gpuctk_spec(cdi_setup):
    require_tool("podman")
    with open(cdi_setup["spec_path"]) as f:
        text = f.read()
    assert "cdiVersion: 0.5.0" in text
    r = podman_run(
        ["--device", f"{KIND}=dev0", "--", "sh", "-c", CHECK], cdi_spec_dirs=[cdi_setup["spec_dir"]]
    )
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout) == expected_output(cdi_setup["token"])


def test_runc_sees_device_injected_by_gpuctk(cdi_setup, tmp_path):
    require_tool("runc")
    bundle = make_bundle(str(tmp_path / "bundle"), ["sh", "-c", CHECK])
    config = os.path.join(bundle, "config.json")
    p = subprocess.run(
        [
            venv_script("gpuctk"),
            "cdi",
            "inject",
            "--spec-dir",
            cdi_setup["spec_dir"],
            "--device",
            f"{KIND}=dev0",
            "--in-place",
            config,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    with open(config) as f:
        oci = json.load(f)
    assert {
        "path": "/dev/gpuctk-cdi0",
        "type": "c",
        "major": MAJOR,
        "minor": MINOR,
        "fileMode": 0o666,
    } in oci["linux"]["devices"]
    assert {"allow": True, "type": "c", "major": MAJOR, "minor": MINOR, "access": "rwm"} in oci["linux"][
        "resources"
    ]["devices"]
    r = runc_run(bundle, container_id=f"gpuctk-cdi-interop-{os.getpid()}")
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout) == expected_output(cdi_setup["token"])
