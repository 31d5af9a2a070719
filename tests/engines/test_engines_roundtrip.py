"""Golden round trips on real `containerd config default` outputs (1.7.34, 2.0.11, 2.2.7,
2.3.4, copied from their release builds into tests/data/engines/containerd-default/), a
version-1 file, no file at all, and Docker's daemon.json: ``configure`` then ``--uninstall``
gives back the original bytes, also after a second ``configure`` with other options in
between. The independent check is the original file itself: every byte must come back.

Runs the real I/O shell (``engines.apply``: backups on disk, byte restore) in a temp dir.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gpuctk.engines import apply
from gpuctk.engines.containerd import CRI_PLUGIN
from gpuctk.engines.model import ConfigureOptions
from gpuctk.errors import GpuctkError

DATA = Path(__file__).resolve().parents[1] / "data" / "engines"
DEFAULTS = DATA / "containerd-default"
# fixture -> (containerd version it came from, its config version)
FIXTURES = {
    "config-default-v1.7.34.toml": ((1, 7, 34), 2),
    "config-default-v2.0.11.toml": ((2, 0, 11), 3),
    "config-default-v2.2.7.toml": ((2, 2, 7), 3),
    "config-default-v2.3.4.toml": ((2, 3, 4), 4),
}
V1 = DATA / "inputs" / "containerd-v1.toml"


def _run(opts: ConfigureOptions, uninstall: bool = False) -> None:
    apply.apply(apply.plan(opts, uninstall=uninstall))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and apply.BACKUP_INFIX not in p.name
    }


def _opts(root: Path, version: Any, drop_in: bool, **kw: Any) -> ConfigureOptions:
    return ConfigureOptions(
        engine="containerd",
        config=str(root / "config.toml"),
        drop_in=str(root / "conf.d" / "99-nvidia.toml") if drop_in else "",
        engine_version=version,
        **kw,
    )


SECOND: dict[str, Any] = {
    "set_as_default": True,
    "enable_cdi": True,
    "container_annotations": ["nvidia.cdi.k8s.io/*"],
    "cdi_spec_dirs": ["/etc/cdi", "/var/run/cdi"],
}


def _fixture_text(name: str, root: Path, own_imports: bool) -> str:
    text = (DEFAULTS / name).read_text()
    if own_imports:
        # 2.3's default already imports /etc/containerd/conf.d/*.toml: point it at this root
        text = text.replace("/etc/containerd/conf.d/*.toml", str(root / "conf.d" / "*.toml"))
    return text


@pytest.mark.parametrize("name", sorted(FIXTURES))
@pytest.mark.parametrize("drop_in", [True, False], ids=["drop-in", "in-place"])
@pytest.mark.parametrize("second", [False, True], ids=["once", "twice"])
@pytest.mark.parametrize("own_imports", [False, True], ids=["host-imports", "own-imports"])
def test_configure_uninstall_gives_the_original_bytes_back(
    tmp_path: Path, name: str, drop_in: bool, second: bool, own_imports: bool
) -> None:
    version, cfg_version = FIXTURES[name]
    (tmp_path / "config.toml").write_text(_fixture_text(name, tmp_path, own_imports))
    before = _files(tmp_path)
    opts = _opts(tmp_path, version, drop_in)
    _run(opts)
    after = _files(tmp_path)
    assert after != before
    # the effective config has the runtime in the CRI table of this config version
    merged = tomllib.loads((tmp_path / "config.toml").read_text())
    if drop_in:
        drop = tomllib.loads((tmp_path / "conf.d" / "99-nvidia.toml").read_text())
        assert drop["version"] == (3 if cfg_version == 4 else cfg_version)
        merged = drop
    cri: Any = merged
    for key in CRI_PLUGIN[cfg_version]:
        cri = cri[key]
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == opts.runtime_path
    if second:
        _run(replace(opts, **SECOND))
    _run(opts, uninstall=True)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("drop_in", [True, False], ids=["drop-in", "in-place"])
@pytest.mark.parametrize("second", [False, True], ids=["once", "twice"])
def test_version_1_and_no_file_round_trip(tmp_path: Path, drop_in: bool, second: bool) -> None:
    for case, text in (("v1", V1.read_text()), ("none", None)):
        root = tmp_path / case
        root.mkdir()
        if text is not None:
            (root / "config.toml").write_text(text)
        before = _files(root)
        opts = _opts(root, (1, 6, 20), drop_in)
        _run(opts)
        if second:
            _run(replace(opts, **SECOND))
        _run(opts, uninstall=True)
        assert _files(root) == before, case


def test_imports_empty_array_is_kept(tmp_path: Path) -> None:
    text = (DEFAULTS / "config-default-v2.0.11.toml").read_text()
    assert "imports = []" in text
    (tmp_path / "config.toml").write_text(text)
    opts = _opts(tmp_path, (2, 0, 11), True)
    _run(opts)
    assert "imports = []" not in (tmp_path / "config.toml").read_text()
    _run(opts, uninstall=True)
    assert "imports = []" in (tmp_path / "config.toml").read_text()


def test_v4_import_already_covering_the_drop_in_is_left_alone(tmp_path: Path) -> None:
    text = _fixture_text("config-default-v2.3.4.toml", tmp_path, True)
    (tmp_path / "config.toml").write_text(text)
    opts = _opts(tmp_path, (2, 3, 4), True)
    _run(opts)
    assert (tmp_path / "config.toml").read_text() == text  # no edit, so no backup either
    assert not list(tmp_path.glob("config.toml" + apply.BACKUP_INFIX + "*"))
    _run(opts, uninstall=True)
    assert (tmp_path / "config.toml").read_text() == text
    assert not (tmp_path / "conf.d" / "99-nvidia.toml").exists()


def test_unknown_future_version_is_refused_unless_forced(tmp_path: Path) -> None:
    text = (DEFAULTS / "config-default-v2.3.4.toml").read_text().replace("version = 4", "version = 5", 1)
    (tmp_path / "config.toml").write_text(text)
    opts = _opts(tmp_path, (2, 4, 0), True)
    with pytest.raises(GpuctkError, match=r"field version: unsupported value 5 \(gpuctk knows 1, 2, 3, 4"):
        apply.plan(opts)
    assert _files(tmp_path) == {"config.toml": text.encode()}
    _run(replace(opts, force_config_version=4))
    drop = tomllib.loads((tmp_path / "conf.d" / "99-nvidia.toml").read_text())
    assert "nvidia" in drop["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]


DOCKER_ORIGINAL = '{\n  "log-driver": "json-file",\n  "features": {"buildkit": true},\n  "runtimes": {}\n}\n'


@pytest.mark.parametrize("original", [DOCKER_ORIGINAL, None], ids=["daemon.json", "no-file"])
@pytest.mark.parametrize("version", [(20, 10, 24), (25, 0, 3)], ids=["20.10", "25"])
def test_docker_round_trip(tmp_path: Path, original: str | None, version: Any) -> None:
    path = tmp_path / "daemon.json"
    if original is not None:
        path.write_text(original)
    before = _files(tmp_path)
    opts = ConfigureOptions(engine="docker", config=str(path), engine_version=version)
    _run(opts)
    _run(replace(opts, set_as_default=True, enable_cdi=True, cdi_spec_dirs=["/etc/cdi"]))
    _run(opts, uninstall=True)
    assert _files(tmp_path) == before


def test_containerd_16_drop_in_without_main_config_keeps_runc() -> None:
    """Defect 1: before 2.0 the drop-in replaces the CRI table: runc must be in it."""
    from gpuctk.engines import containerd

    opts = ConfigureOptions(
        engine="containerd",
        config="/x/config.toml",
        drop_in="/x/conf.d/99-nvidia.toml",
        engine_version=(1, 6, 20),
    )
    plan = containerd.plan_configure(opts, lambda p: None)
    drop = tomllib.loads(next(c.new for c in plan.changes if c.path.endswith("99-nvidia.toml") and c.new))
    ctd = drop["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert set(ctd["runtimes"]) == {"nvidia", "runc"}
    assert ctd.get("default_runtime_name", "runc") in ctd["runtimes"]
    for entry in ctd["runtimes"].values():
        assert "runtime_root" not in entry and "runtime_engine" not in entry


def test_containerd_16_never_gets_cdi_keys() -> None:
    from gpuctk.engines import containerd

    opts = ConfigureOptions(
        engine="containerd",
        config="/x/config.toml",
        drop_in="/x/conf.d/99-nvidia.toml",
        engine_version=(1, 6, 20),
        enable_cdi=True,
        cdi_spec_dirs=["/etc/cdi"],
    )
    plan = containerd.plan_configure(opts, lambda p: None)
    text = "".join(c.new or "" for c in plan.changes)
    assert "enable_cdi" not in text and "cdi_spec_dirs" not in text
    assert any("no native CDI" in w for w in plan.warnings)


@pytest.mark.parametrize(
    "version,written", [((20, 10, 24), False), ((24, 0, 7), False), ((25, 0, 0), True), ((28, 2, 0), True)]
)
def test_docker_cdi_keys_gated_by_version(version: Any, written: bool) -> None:
    from gpuctk.engines import docker

    opts = ConfigureOptions(
        engine="docker",
        config="/x/daemon.json",
        engine_version=version,
        enable_cdi=True,
        cdi_spec_dirs=["/c"],
    )
    plan = docker.plan_configure(opts, lambda p: None)
    text = plan.changes[0].new or ""
    assert ("cdi-spec-dirs" in text) is written
    assert ('"cdi"' in text) is written
    assert bool(plan.warnings) is not written
    assert '"nvidia"' in text


def test_main_without_file_os_level(tmp_path: Path) -> None:
    """No file + a drop-in on 2.0: version 3, minimal drop-in (2.0 merges imports)."""
    opts = _opts(tmp_path, (2, 0, 11), True, enable_cdi=True)
    _run(opts)
    drop = tomllib.loads((tmp_path / "conf.d" / "99-nvidia.toml").read_text())
    assert drop["version"] == 3
    runtimes = drop["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]
    assert set(runtimes) == {"nvidia"}
    assert os.path.exists(tmp_path / "config.toml")


def test_a_users_file_at_the_drop_in_path_is_backed_up_and_restored(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(_fixture_text("config-default-v1.7.34.toml", tmp_path, False))
    users = '# my own snippet\nversion = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  max_container_log_line_size = 1\n'
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "99-nvidia.toml").write_text(users)
    before = _files(tmp_path)
    opts = _opts(tmp_path, (1, 7, 34), True)
    _run(opts)
    assert list((tmp_path / "conf.d").glob("99-nvidia.toml" + apply.BACKUP_INFIX + "*"))
    drop = tomllib.loads((tmp_path / "conf.d" / "99-nvidia.toml").read_text())
    assert drop["plugins"]["io.containerd.grpc.v1.cri"]["max_container_log_line_size"] == 1  # kept meanwhile
    _run(opts, uninstall=True)
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    "text,words",
    [
        (
            'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\ndefault_runtime_name = ["runc"]\n',
            "must be a string",
        ),
    ],
)
def test_odd_types_are_one_line_errors(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    for drop_in in (True, False):
        with pytest.raises(GpuctkError, match=words):
            apply.plan(_opts(tmp_path, (1, 6, 20), drop_in))


@pytest.mark.parametrize(
    "text,words",
    [
        ('{"x": "\\ud800"}\n', "lone surrogate"),
        ('{"default-runtime": ["x"]}\n', "field default-runtime: must be a string"),
    ],
)
def test_docker_odd_input_is_one_line_error(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(text)
    with pytest.raises(GpuctkError, match=words):
        apply.plan(ConfigureOptions(engine="docker", config=str(path), engine_version=(20, 10, 24)))
    assert sorted(os.listdir(tmp_path)) == ["daemon.json"]
