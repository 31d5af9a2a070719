"""gpuctk.config loads render.py on first use (PEP 562) so that the shim's create path never
imports it; its names stay what they were when the package imported render.py eagerly: in
particular ``gpuctk.config.render`` is the function, whichever import comes first."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = {
    "package attribute": "import gpuctk.config as c; r = c.render",
    "from-import": "from gpuctk.config import render as r",
    "submodule first": "import gpuctk.config.render; import gpuctk.config as c; r = c.render",
    "from submodule first": "from gpuctk.config.render import _toml_value; from gpuctk.config import render as r",
    "import as": "import gpuctk.config.render as r",
}
CHECK = """
import sys
{code}
import gpuctk.config as c
import gpuctk.config.render as module
assert callable(r) and r is sys.modules["gpuctk.config.render"].render, r
assert c.parse_value is sys.modules["gpuctk.config.render"].parse_value
assert c.set_value is sys.modules["gpuctk.config.render"].set_value
assert c.render is r
assert "render" in c.__all__ and "parse_value" in dir(c)
print("ok")
"""


@pytest.mark.parametrize("code", CASES.values(), ids=CASES.keys())
def test_render_names_whatever_the_first_import(code: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHECK.format(code=code)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr


def test_loading_the_package_does_not_load_the_writer() -> None:
    code = "import sys, gpuctk.config; print(sorted(m for m in sys.modules if m.startswith('gpuctk.config')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "['gpuctk.config', 'gpuctk.config.load']", r.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    import gpuctk.config as c

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        c.nope  # noqa: B018
