"""is_qualified_cdi_name is checked by hand (no ``re`` on the create path); it must accept
exactly what its documented regular expression accepts as a whole string."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.request.container import _QUALIFIED_RE, is_qualified_cdi_name

FULL = re.compile(_QUALIFIED_RE.rstrip("$") + r"\Z")
ALPHABET = st.sampled_from(list("aZ09_.-:/=\n é"))


@settings(max_examples=1500, deadline=None)
@given(st.text(ALPHABET, max_size=14))
def test_matches_the_regex(name):
    assert is_qualified_cdi_name(name) == bool(FULL.match(name))


def test_examples():
    assert is_qualified_cdi_name("nvidia.com/gpu=0")
    assert is_qualified_cdi_name("nvidia.com/gpu=GPU-1:2")
    assert not is_qualified_cdi_name("nvidia.com/gpu=0\n")  # the old `$` accepted a trailing newline
    assert not is_qualified_cdi_name("nvidia.com/gpu.x=0")  # no dot in the class
    assert not is_qualified_cdi_name("nvidia.com/gpu=")
    assert not is_qualified_cdi_name("0")
