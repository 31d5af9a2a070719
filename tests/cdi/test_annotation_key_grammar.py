"""The hand-written annotation key checks (no ``re`` on the create path) accept exactly what
the Kubernetes regular expressions accept."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk.cdi.validate import _is_annotation_name, _is_dns_subdomain, annotation_key_problem

NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN = re.compile(rf"{LABEL}(\.{LABEL})*\Z")
ALPHABET = st.sampled_from(list("aZ09-_./\n é"))


@settings(max_examples=1500, deadline=None)
@given(st.text(ALPHABET, max_size=12))
def test_name_and_subdomain_match_the_regexes(s):
    assert _is_annotation_name(s) == bool(NAME.match(s))
    assert _is_dns_subdomain(s) == bool(SUBDOMAIN.match(s))


def test_keys():
    assert annotation_key_problem("cdi.k8s.io/vendor_dev") is None
    assert annotation_key_problem("Example.COM/Name") is None  # checked lower-cased
    assert annotation_key_problem("-bad.io/x") is not None
    assert annotation_key_problem("a..b/x") is not None
    assert annotation_key_problem("ok/-x") is not None
