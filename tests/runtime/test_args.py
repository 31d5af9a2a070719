"""argv parsing: upstream's `internal/oci/args_test.go` table restated, plus runc's logging flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuctk.oci.args import (
    ArgsError,
    bundle_dir,
    has_create,
    has_version_flag,
    logging_flags,
    modifies_spec,
    spec_path,
    subcommand,
)

BUNDLE_CASES = [
    # (argv, bundle or None for error, is create)
    ([], "", False),
    (["create"], "", True),
    (["--bundle"], None, False),
    (["-b"], None, False),
    (["--bundle", "/foo/bar"], "/foo/bar", False),
    (["--not-bundle", "/foo/bar"], "", False),
    (["--"], "", False),
    (["-bundle", "/foo/bar"], "/foo/bar", False),
    (["--bundle=/foo/bar"], "/foo/bar", False),
    (["-b=/foo/bar"], "/foo/bar", False),
    (["-b=/foo/=bar"], "/foo/=bar", False),
    (["-b", "/foo/bar"], "/foo/bar", False),
    (["create", "-b", "/foo/bar"], "/foo/bar", True),
    (["-b", "create", "create"], "create", True),
    (["-b=create", "create"], "create", True),
    (["-b", "create"], "create", False),
    (["--bundle", "create"], "create", False),
    (["--bundle=create"], "create", False),
    (["---bundle", "/x"], "/x", False),
    (["-b", "/a", "--bundle=/b"], "/b", False),
    (["--root", "/run/runc", "--log", "/l", "create", "--bundle", "/b", "id"], "/b", True),
    (["start", "id"], "", False),
    (["delete", "--force", "create"], "", True),
]


@pytest.mark.parametrize(
    ("argv", "bundle", "create"), BUNDLE_CASES, ids=[" ".join(c[0]) or "<empty>" for c in BUNDLE_CASES]
)
def test_bundle_and_create(argv, bundle, create):
    if bundle is None:
        with pytest.raises(ArgsError, match="bundle option requires an argument"):
            bundle_dir(argv)
    else:
        assert bundle_dir(argv) == bundle
    assert has_create(argv) is create


@pytest.mark.parametrize(
    ("bundle", "path"),
    [
        ("", "config.json"),
        ("/not/empty/", "/not/empty/config.json"),
        ("not/absolute", "not/absolute/config.json"),
    ],
)
def test_spec_path(bundle, path):
    assert spec_path(bundle) == path


@pytest.mark.parametrize(
    ("argv", "version"),
    [
        (["--version"], True),
        (["-version"], True),
        (["-v"], False),
        (["--version=1"], True),
        (["create", "x"], False),
        (["version"], False),
    ],
)
def test_version_flag(argv, version):
    assert has_version_flag(argv) is version


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (None, None, False)),
        (["--log", "/l.json", "--log-format", "json", "create", "id"], ("/l.json", "json", False)),
        (["--log=/l", "--log-format=text", "--debug", "run"], ("/l", "text", True)),
        (["--root", "/r", "--debug", "--systemd-cgroup", "--log", "/x", "create"], ("/x", None, True)),
        (["create", "--log", "/not-global"], (None, None, False)),
    ],
)
def test_logging_flags(argv, expected):
    assert logging_flags(argv) == expected


@given(
    st.lists(
        st.sampled_from(["create", "-b", "--bundle", "--bundle=x", "-b=create", "x", "--", "run", "--log"]),
        max_size=6,
    )
)
def test_parsers_never_crash(argv):
    try:
        bundle_dir(argv)
    except ArgsError:
        assert argv and argv[-1] in ("-b", "--bundle")
    has_create(argv)
    logging_flags(argv)


@pytest.mark.parametrize(
    ("argv", "sub", "modifies"),
    [
        (["--root", "/r", "run", "--bundle", "/b", "id"], "run", True),
        (["--log", "/l", "--debug", "create", "id"], "create", True),
        (["exec", "id", "make", "run"], "exec", False),
        (["--root", "run", "state", "id"], "state", False),
        (["--", "run"], None, False),
        ([], None, False),
    ],
)
def test_subcommand_and_run(argv, sub, modifies):
    assert subcommand(argv) == sub
    assert modifies_spec(argv) is modifies
