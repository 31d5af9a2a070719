"""Cache/registry vectors after cncf-tags/container-device-interface ``pkg/cdi/cache_test.go`` and
``pkg/cdi/spec-dirs_test.go`` (C1..C12) and directory scanning."""

import os

import pytest

from gpuctk.cdi import Registry


def spec_yaml(kind, *devs, version="0.3.0"):
    out = f'cdiVersion: "{version}"\nkind: {kind}\ndevices:\n'
    for d in devs:
        out += f"  - name: {d}\n    containerEdits:\n      env: [SRC_{d.upper()}=x]\n"
    return out


@pytest.fixture
def dirs(tmp_path):
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    return etc, run


def write(d, name, text):
    (d / name).write_text(text)
    return str(d / name)


def test_c1_missing_dirs(tmp_path):
    reg = Registry([str(tmp_path / "no-etc"), str(tmp_path / "no-run")])
    assert reg.list_devices() == [] and reg.errors() == {}


def test_c2_one_spec(dirs):
    etc, run = dirs
    write(etc, "vendor1.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(etc), str(run)])
    assert reg.list_devices() == ["vendor1.com/device=dev1"]
    assert reg.get_device("vendor1.com/device=dev1").spec.priority == 0  # type: ignore[union-attr]


def test_c3_later_dir_wins(dirs):
    etc, run = dirs
    write(etc, "vendor1.yaml", spec_yaml("vendor1.com/device", "dev1", "dev2"))
    p = write(run, "vendor1.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(etc), str(run)])
    assert reg.list_devices() == ["vendor1.com/device=dev1", "vendor1.com/device=dev2"]
    assert reg.get_device("vendor1.com/device=dev1").spec.source == p  # type: ignore[union-attr]
    assert reg.get_device("vendor1.com/device=dev1").spec.priority == 1  # type: ignore[union-attr]
    assert reg.get_device("vendor1.com/device=dev2").spec.priority == 0  # type: ignore[union-attr]
    assert reg.errors() == {}
    assert len(reg.specs()) == 2  # shadowed specs are still loaded


def test_c4_same_priority_conflict(dirs):
    etc, run = dirs
    a = write(run, "vendor1.yaml", spec_yaml("vendor1.com/device", "dev1", "dev2"))
    b = write(run, "vendor1-other.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(etc), str(run)])
    assert reg.list_devices() == ["vendor1.com/device=dev2"]
    msg = f'conflicting device "vendor1.com/device=dev1" (specs "{a}", "{b}")'
    assert reg.errors() == {a: [msg], b: [msg]}


def test_c5_c6_refresh(dirs):
    etc, run = dirs
    write(etc, "vendor1.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(etc), str(run)])
    write(run, "vendor2.yaml", spec_yaml("vendor2.com/device", "dev1"))
    assert reg.list_devices() == ["vendor1.com/device=dev1"]
    reg.refresh()
    assert reg.list_devices() == ["vendor1.com/device=dev1", "vendor2.com/device=dev1"]
    os.unlink(etc / "vendor1.yaml")
    reg.refresh()
    assert reg.list_devices() == ["vendor2.com/device=dev1"]


def test_c7_priority_updates(dirs):
    etc, run = dirs
    write(etc, "v.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(etc), str(run)])
    assert reg.get_device("vendor1.com/device=dev1").spec.priority == 0  # type: ignore[union-attr]
    write(run, "v.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg.refresh()
    assert reg.get_device("vendor1.com/device=dev1").spec.priority == 1  # type: ignore[union-attr]


def test_c8_vendors_and_classes(dirs):
    etc, run = dirs
    for i, (v, c) in enumerate(
        [
            ("vendor1.com", "device"),
            ("vendor2.com", "other-device"),
            ("vendor3.com", "another-device"),
            ("vendor1.com", "yet-another-device"),
        ]
    ):
        write(etc, f"s{i}.yaml", spec_yaml(f"{v}/{c}", "dev1"))
    reg = Registry([str(etc), str(run)])
    assert reg.list_vendors() == ["vendor1.com", "vendor2.com", "vendor3.com"]
    assert reg.list_classes() == ["another-device", "device", "other-device", "yet-another-device"]


def test_c11_missing_dir_skipped(dirs, tmp_path):
    etc, _ = dirs
    write(etc, "v.yaml", spec_yaml("vendor1.com/device", "dev1"))
    reg = Registry([str(tmp_path / "no-such-dir"), str(etc)])
    assert reg.list_devices() == ["vendor1.com/device=dev1"] and reg.errors() == {}


def test_c12_conflict_in_lower_dir_stays_deleted(dirs):
    etc, run = dirs
    write(etc, "a.yaml", spec_yaml("vendor1.com/device", "dev1"))
    write(etc, "b.yaml", spec_yaml("vendor1.com/device", "dev1"))
    write(run, "c.yaml", spec_yaml("vendor1.com/device", "dev1", "dev2"))
    reg = Registry([str(etc), str(run)])
    assert reg.list_devices() == ["vendor1.com/device=dev2"]


def test_scan_rules(dirs, tmp_path):
    etc, _run = dirs
    write(
        etc,
        "a.json",
        '{"cdiVersion":"0.3.0","kind":"j.com/d","devices":[{"name":"x","containerEdits":{"env":["A=1"]}}]}',
    )
    write(etc, "b.yml", spec_yaml("yml.com/device", "dev1"))  # .yml ignored, like the reference
    write(etc, "c.JSON", spec_yaml("upper.com/device", "dev1"))
    write(etc, "d.yaml.tmp", spec_yaml("tmp.com/device", "dev1"))
    (etc / "sub.yaml").mkdir()  # a real directory named like a spec: skipped
    write(etc / "sub.yaml", "x.yaml", spec_yaml("nested.com/device", "dev1"))
    target = tmp_path / "elsewhere.yaml"
    target.write_text(spec_yaml("link.com/device", "dev1"))
    os.symlink(target, etc / "link.yaml")  # a symlinked file is read
    os.symlink(tmp_path / "missing.yaml", etc / "dangling.yaml")
    reg = Registry([str(etc)])
    assert reg.list_devices() == ["j.com/d=x", "link.com/device=dev1"]
    errs = reg.errors()
    assert list(errs) == [str(etc / "dangling.yaml")]
    assert "No such file or directory" in errs[str(etc / "dangling.yaml")][0]


def test_bad_files_do_not_hide_good_ones(dirs):
    etc, run = dirs
    write(etc, "good.yaml", spec_yaml("vendor1.com/device", "dev1"))
    bad = write(etc, "bad.yaml", "cdiVersion: [\n")
    os.mkfifo(etc / "fifo.yaml")  # would block a naive open()
    reg = Registry([str(etc), str(run)])
    assert reg.list_devices() == ["vendor1.com/device=dev1"]
    errs = reg.errors()
    assert "YAML" in errs[bad][0]
    assert "not a regular file" in errs[str(etc / "fifo.yaml")][0]


def test_unreadable_dir_stops_later_dirs(tmp_path, dirs):
    _etc, run = dirs
    write(run, "v.yaml", spec_yaml("vendor1.com/device", "dev1"))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    reg = Registry([str(not_a_dir), str(run)])
    assert reg.list_devices() == []  # the reference stops scanning at an unreadable dir
    errs = reg.errors()
    assert "Not a directory" in errs[str(not_a_dir)][0]
    assert "not scanned" in errs[str(run)][0]


def test_symlinked_spec_dir(tmp_path, dirs):
    etc, _ = dirs
    write(etc, "v.yaml", spec_yaml("vendor1.com/device", "dev1"))
    os.symlink(etc, tmp_path / "linkdir")
    assert Registry([str(tmp_path / "linkdir")]).list_devices() == ["vendor1.com/device=dev1"]


def test_default_dirs():
    assert Registry.__init__.__defaults__ == (None, None)
    from gpuctk.cdi import DEFAULT_SPEC_DIRS

    assert DEFAULT_SPEC_DIRS == ("/etc/cdi", "/var/run/cdi")


def test_c9_write_spec_invalid_nothing_written(dirs):
    from gpuctk.cdi import CDIError

    etc, run = dirs
    reg = Registry([str(etc), str(run)])
    bad_kind = {
        "cdiVersion": "0.3.0",
        "kind": "vendor1.comdevice",
        "devices": [{"name": "d", "containerEdits": {"env": ["A=1"]}}],
    }
    no_devices = {"cdiVersion": "0.3.0", "kind": "vendor1.com/device", "devices": []}
    for doc in (bad_kind, no_devices):
        with pytest.raises(CDIError):
            reg.write_spec(doc, "vendor1-device")
    assert os.listdir(run) == []
    with pytest.raises(CDIError, match=r'invalid vendor/class "vendor1\.comdevice" in Spec'):
        from gpuctk.cdi.registry import spec_name_for_kind

        spec_name_for_kind("vendor1.comdevice")


def test_c10_transient_spec(dirs):
    from gpuctk.cdi.registry import spec_name_for_kind

    etc, run = dirs
    reg = Registry([str(etc), str(run)])
    name = spec_name_for_kind("vendor.com/device", "id0")
    assert name == "vendor.com-device_id0"
    assert spec_name_for_kind("vendor.com/device", "a/b") == "vendor.com-device_a_b"
    assert spec_name_for_kind("vendor.com/device") == "vendor.com-device"
    path = reg.write_spec(spec_yaml_doc("vendor.com/device", "dev1"), name)
    assert path == str(run / "vendor.com-device_id0.yaml")
    assert reg.list_devices() == ["vendor.com/device=dev1"]
    assert reg.get_device("vendor.com/device=dev1").spec.priority == 1  # type: ignore[union-attr]
    reg.remove_spec(name)
    assert not os.path.exists(path) and reg.list_devices() == []
    reg.remove_spec(name)  # missing: not an error
    assert reg.write_spec(spec_yaml_doc("vendor.com/device", "dev1"), "x.json").endswith("/run/x.json")
    with pytest.raises(Exception, match="no Spec directories"):
        Registry([]).write_spec(spec_yaml_doc("vendor.com/device", "dev1"), "x")


def spec_yaml_doc(kind, *devs):
    return {
        "cdiVersion": "0.3.0",
        "kind": kind,
        "devices": [{"name": d, "containerEdits": {"env": [f"SRC_{d.upper()}=x"]}} for d in devs],
    }
