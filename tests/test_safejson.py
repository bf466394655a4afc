"""shared.safejson: NULs dropped and deep nesting refused whatever the body's form, and the fast path (a body
whose text shows nothing to clean) gives exactly what the full walk gives."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import safejson


@pytest.mark.parametrize("body", [
    '{"a": "x\\u0000y", "b": ["\\u0000"]}',
    b'{"a": "x\\u0000y", "b": ["\\u0000"]}',
    json.dumps({"a": "x\x00y", "b": ["\x00"]}).encode("utf-16"),  # json.loads reads UTF-16 bytes too
    json.dumps({"a": "x\x00y", "b": ["\x00"]}).encode("utf-32"),
])
def test_nul_is_dropped_in_every_form(body):
    assert safejson.loads(body) == {"a": "xy", "b": [""]}


@pytest.mark.parametrize("depth, refused", [(safejson.MAX_DEPTH, False), (safejson.MAX_DEPTH + 2, True)])
def test_nesting_past_the_limit_is_refused(depth, refused):
    body = "[" * depth + "]" * depth
    if refused:
        with pytest.raises(ValueError):
            safejson.loads(body)
    else:
        assert safejson.loads(body) is not None


values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet="ab\x00{[\\u"),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab\x00", max_size=2),
                                                                                    inner, max_size=3),
                      max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(values)
def test_the_fast_path_answers_as_the_full_walk(value):
    body = json.dumps(value)
    try:
        expected = safejson._clean(json.loads(body), 0)
    except ValueError:
        with pytest.raises(ValueError):
            safejson.loads(body)
        return
    assert safejson.loads(body) == expected
    assert safejson.loads(body.encode()) == expected
