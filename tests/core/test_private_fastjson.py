"""gpuctk._fastjson gives exactly what json.loads / json.dumps give (values, text, errors)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuctk import _fastjson as fastjson

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4), max_leaves=20
)


def outcome(fn, *args, **kw):
    try:
        return "ok", repr(fn(*args, **kw))
    except Exception as exc:  # the exception itself is what is compared
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from([(",", ":"), (", ", ": ")]), st.booleans())
def test_dumps_matches_json(v, separators, ensure_ascii):
    assert outcome(fastjson.dumps, v, separators=separators, ensure_ascii=ensure_ascii) == outcome(
        json.dumps, v, separators=separators, ensure_ascii=ensure_ascii
    )


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["", " ", "\n\t ", "x", "]", "\ufeff"]), st.booleans())
def test_loads_matches_json(v, junk, as_bytes):
    text = json.dumps(v) + junk
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert outcome(fastjson.loads, data) == outcome(json.loads, data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_loads_arbitrary_bytes_matches_json(data):
    assert outcome(fastjson.loads, data) == outcome(json.loads, data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b'{"a":1}x',
        b'{"a":',
        b"\xef\xbb\xbf{}",
        "\ufeff{}",
        b"\xff",
        '{"a": NaN}',
        b'{"a": -Infinity}',
        '{"a":1,"a":2}',
        b"\x00{\x00}",
        "[1]".encode("utf-16"),
        '{"a":1}'.encode("utf-32"),
        b'"\xed\xa0\x80"',
        42,
    ],
)
def test_edge_documents(data):
    assert outcome(fastjson.loads, data) == outcome(json.loads, data)


def test_hooks_are_passed_through():
    def pairs(p):
        return {"pairs": p}

    doc = '{"a": {"b": NaN}}'
    assert outcome(fastjson.loads, doc, object_pairs_hook=pairs, parse_constant=str) == outcome(
        json.loads, doc, object_pairs_hook=pairs, parse_constant=str
    )


def test_hook_exception_propagates():
    class Dup(ValueError):
        pass

    def hook(p):
        raise Dup("k")

    with pytest.raises(Dup):
        fastjson.loads('{"a": 1}', object_pairs_hook=hook)


def test_unserialisable_and_circular():
    loop: list = []
    loop.append(loop)
    for v in ({"a": {1, 2}}, {(1, 2): 3}, loop, object()):
        assert outcome(fastjson.dumps, v) == outcome(json.dumps, v)


@pytest.mark.parametrize("bad", ["", "{not json", "[1,]", "{} extra", '"unterminated', "\ufeff{}"])
def test_malformed_input_is_a_value_error(bad):
    # hook state and config.json parsing rely on ValueError (json.JSONDecodeError) only
    with pytest.raises(ValueError):
        fastjson.loads(bad)


@pytest.mark.parametrize("bad", ["{not json", "[1,]", '{"a" 1}', '"\\x"'])
def test_malformed_input_in_a_fresh_interpreter_is_json_decode_error(bad):
    # Without json imported first (as on the create path and in hooks), CPython 3.11's C
    # scanner cannot build its JSONDecodeError; the error must still be the stdlib's.
    import subprocess
    import sys

    code = (
        "import sys\nfrom gpuctk import _fastjson as fastjson\nassert 'json' not in sys.modules\n"
        "try:\n    fastjson.loads(sys.argv[1])\nexcept ValueError as e:\n"
        "    print(type(e).__module__ + '.' + type(e).__name__)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, bad], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "json.decoder.JSONDecodeError"
