"""Attacks on the JIT cache (root writes what later gets mounted into containers): umask 0,
pre-created or swapped path components, symlinks, hard links, unbounded growth."""

from __future__ import annotations

import os
import stat

import pytest

import gpuctk.generate.jit as jit
from support.tools import require_root

USER = 1000


@pytest.fixture
def node(sim_nodes):
    jit._memo.clear()
    yield sim_nodes.get("dgx-h100")
    jit._memo.clear()


def _store_and_hit(node):
    jit._memo.clear()
    first = jit.full_spec_cached({}, node.root)[1]
    jit._memo.clear()
    return first, jit.full_spec_cached({}, node.root)[1]


def test_umask_0_creates_every_missing_component_0700(node, tmp_path, monkeypatch):
    base = tmp_path / "b"
    base.mkdir(mode=0o755)
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(base / "run" / "gpuctk" / "jit-cache"))
    old = os.umask(0)
    try:
        assert _store_and_hit(node) == (False, True)
    finally:
        os.umask(old)
    for d in (base / "run", base / "run" / "gpuctk", base / "run" / "gpuctk" / "jit-cache"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    (entry,) = os.listdir(base / "run" / "gpuctk" / "jit-cache")
    assert stat.S_IMODE(os.stat(base / "run" / "gpuctk" / "jit-cache" / entry).st_mode) == 0o600


def test_umask_077_still_gives_a_usable_cache(node, tmp_path, monkeypatch):
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(tmp_path / "c" / "d"))
    old = os.umask(0o777)
    try:
        assert _store_and_hit(node) == (False, True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c" / "d").st_mode) == 0o700


def test_leaf_swapped_for_a_symlink_gets_nothing_written(node, tmp_path, monkeypatch):
    require_root()
    parent = tmp_path / "p"
    parent.mkdir(mode=0o700)
    leaf = parent / "cache"
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(leaf))
    assert _store_and_hit(node) == (False, True)
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chown(victim, USER, USER)  # the user's directory of choice
    for n in os.listdir(leaf):
        os.unlink(leaf / n)
    leaf.rmdir()
    leaf.symlink_to(victim)  # as if a local user had won a race on a writable parent
    assert _store_and_hit(node) == (False, False)
    assert os.listdir(victim) == []


@pytest.mark.parametrize("attack", ["user-owned-parent", "group-writable-parent", "user-owned-leaf"])
def test_untrusted_component_is_neither_read_nor_written(node, tmp_path, monkeypatch, attack):
    require_root()
    parent = tmp_path / "p"
    parent.mkdir(mode=0o700)
    leaf = parent / "cache"
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(leaf))
    assert _store_and_hit(node) == (False, True)
    before = sorted(os.listdir(leaf))
    if attack == "user-owned-parent":
        os.chown(parent, USER, USER)
    elif attack == "group-writable-parent":
        os.chmod(parent, 0o770)
    else:
        os.chown(leaf, USER, USER)
    assert _store_and_hit(node) == (False, False)
    assert sorted(os.listdir(leaf)) == before


def test_root_owned_sticky_parent_is_fine_but_not_as_the_cache_itself(node, tmp_path, monkeypatch):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(sticky / "cache"))
    assert _store_and_hit(node) == (False, True)
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(sticky))
    assert _store_and_hit(node) == (False, False)


def test_hard_linked_entry_is_not_trusted(node, tmp_path, monkeypatch):
    leaf = tmp_path / "cache"
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(leaf))
    assert _store_and_hit(node) == (False, True)
    (entry,) = os.listdir(leaf)
    os.link(leaf / entry, tmp_path / "other-name")
    jit._memo.clear()
    assert jit.full_spec_cached({}, node.root)[1] is False


def test_entries_are_capped(node, tmp_path, monkeypatch):
    leaf = tmp_path / "cache"
    monkeypatch.setenv(jit.ENV_CACHE_DIR, str(leaf))
    monkeypatch.setattr(jit, "MAX_ENTRIES", 3)
    for i in range(6):
        jit._store(f"key-{i}", {"devices": []})
    names = os.listdir(leaf)
    assert len(names) == 3 and not [n for n in names if n.endswith(".tmp")]
