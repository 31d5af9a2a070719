"""The spec YAML emitter: block style, and every value reads back as itself (fuzzed)."""

from __future__ import annotations

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.generate.render import format_for_path, render

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=5))
def test_yaml_roundtrip(data):
    text = render(data, "yaml")
    assert text.startswith("---\n")
    assert yaml.safe_load(text) == (data or None)
    assert json.loads(render(data, "json")) == data


def test_yaml_layout():
    text = render(
        {
            "cdiVersion": "0.5.0",
            "kind": "nvidia.com/gpu",
            "devices": [
                {
                    "name": "0",
                    "containerEdits": {
                        "env": ["A=1"],
                        "hooks": [
                            {
                                "path": "/usr/bin/gpuctk-hook",
                                "args": ["gpuctk-hook", "create-symlinks", "--link", "a::/b"],
                            }
                        ],
                    },
                }
            ],
        },
        "yaml",
    )
    assert text == (
        '---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: "0"\n  containerEdits:\n'
        "    env:\n    - A=1\n    hooks:\n    - path: /usr/bin/gpuctk-hook\n      args:\n      - gpuctk-hook\n"
        '      - create-symlinks\n      - --link\n      - "a::/b"\n'
    )


def test_format_for_path():
    assert format_for_path("/x/nvidia", None) == ("/x/nvidia.yaml", "yaml", None)
    assert format_for_path("/x/nvidia", "json") == ("/x/nvidia.json", "json", None)
    assert format_for_path("s.yml", None) == ("s.yml", "yaml", None)
    path, fmt, warning = format_for_path("s.json", "yaml")
    assert (path, fmt) == ("s.json", "yaml") and "does not match" in (warning or "")


def test_yaml_long_keys_and_odd_strings():
    data = {"k" * 1500: {"a": [1, "-1", "yes", "0:0", "x\n"]}, "": [], "é": {}, "trailing\n": "\U0001f600"}
    assert yaml.safe_load(render(data, "yaml")) == data
