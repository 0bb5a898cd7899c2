"""The quick canonical-form proof never says yes to a body that the RFC 8785 encoder would not write as is."""

import contextlib
import json

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.canonical_check import canonical_object, float_marks

EXAMPLES = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def jcs(body: bytes) -> bytes | None:
    """What the slow path decides: the RFC 8785 form of the body as the standard library reads it."""
    try:
        return rfc8785.dumps(json.loads(body))
    except (ValueError, RecursionError):
        return None


# Values of every JSON kind, with the edges where encoders differ: floats, integers beyond 2^53 and 2^64,
# control characters, DEL, U+2028, characters above U+E000 and outside the Basic Multilingual Plane.
edge_text = st.text(
    st.sampled_from(
        ["a", "Z", "é", "\x00", "\x1f", "\x7f", '"', "\\", "/", "\n", "\u2028", "\ue000", "\uffff"]
    )
    | st.characters(codec="utf-8"),
    max_size=6,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | edge_text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edge_text, inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(edge_text, values, max_size=6)


def encodings(value) -> list[bytes]:
    """The value as several encoders write it: canonical, near-canonical and plainly not."""
    out = [
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "replace"
        ),
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(value).encode("utf-8", "replace"),
    ]
    with contextlib.suppress(ValueError):
        out.append(rfc8785.dumps(value))
    return out


@EXAMPLES
@given(objects)
def test_a_body_proven_canonical_is_exactly_its_rfc8785_form(value):
    for body in encodings(value):
        parsed = canonical_object(body)
        if parsed is not None:
            assert jcs(body) == body
            assert parsed == json.loads(body)


@EXAMPLES
@given(
    st.binary(max_size=40) | objects.map(lambda value: rfc8785.dumps(value) if _encodable(value) else b"{}")
)
def test_altered_bytes_are_never_proven_canonical_unless_they_are(body):
    for candidate in (
        body,
        body.replace(b",", b", ", 1),
        body[:-1],
        body + b" ",
        body.replace(b"1", b"1.0", 1),
    ):
        if canonical_object(candidate) is not None:
            assert jcs(candidate) == candidate


def _encodable(value) -> bool:
    try:
        rfc8785.dumps(value)
    except ValueError:
        return False
    return True


def _common(value) -> bool:
    """Within the rules of event bodies: no floats, integers within ±(2^53-1), no 4-byte characters."""
    if isinstance(value, float):
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) <= 2**53 - 1
    if isinstance(value, str):
        return all(ord(char) < 0x10000 and not 0xD800 <= ord(char) < 0xE000 for char in value)
    if isinstance(value, list):
        return all(map(_common, value))
    if isinstance(value, dict):
        return all(map(_common, value)) and all(map(_common, value.values()))
    return True


@EXAMPLES
@given(objects.filter(_common))
def test_bodies_within_the_rules_of_events_take_the_quick_path(value):
    assert canonical_object(rfc8785.dumps(value)) == value


NOT_CANONICAL = [
    b'{"seq":1,"x":1.0}',  # JCS writes 1
    b'{"seq":1,"x":1e+16}',  # JCS writes 10000000000000000
    b'{"seq":1,"x":1E2}',
    b'{"seq":1,"x":-0.0}',
    b'{"seq":1,"x":NaN}',
    b'{"seq":1,"x":9007199254740992}',  # beyond 2^53 - 1
    b'{"seq":1,"x":18446744073709551616}',
    b'{"x":1,"seq":1}',
    b'{"seq":1, "x":1}',
    b'{"seq":1,"x":"\\u00e9"}',  # JCS writes the character itself
    b'{"seq":1,"x":"\\u001F"}',  # JCS writes lower-case hex
    b'{"seq":1,"x":"\\/"}',
    b'{"seq":1,"x":"\\u000a"}',  # JCS writes \n
    # code point order; JCS sorts by UTF-16, the emoji first
    b'{"seq":1,"\xef\xbf\xbf":1,"\xf0\x9f\x98\x80":2}',
    b'{"seq":1,"x":"\\ud800"}',
    b'{"seq":1,"x":1,"x":1}',
    b'{"seq":1}\n',
    b'\xef\xbb\xbf{"seq":1}',
]


@pytest.mark.parametrize("body", NOT_CANONICAL)
def test_non_canonical_bodies_are_not_proven(body):
    assert jcs(body) != body
    assert canonical_object(body) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"seq":1,"x":1.5}',  # canonical, but a float: left to the RFC 8785 encoder
        b'{"seq":1,"\xf0\x9f\x98\x80":2,"\xef\xbf\xbf":1}',  # canonical (UTF-16 order), a 4-byte character
        b'{"seq":1,"x":"v1.5, beta"}',  # a string that looks like a float
    ],
)
def test_canonical_bodies_outside_the_proof_are_left_to_the_encoder(body):
    assert jcs(body) == body
    assert canonical_object(body) is None


def test_a_common_body_is_proven():
    body = rfc8785.dumps({"seq": 7, "v": 1, "actor": {"name": "Zoë", "id": None}, "changes": {"n": [1, -2]}})
    assert canonical_object(body) == json.loads(body)


@EXAMPLES
@given(
    st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e21, 1e-5, 1e-7, 5e-324, -0.0])
)
def test_every_float_orjson_writes_otherwise_than_rfc8785_is_found(number):
    """The proof finds floats in orjson's output by their `.` or their signed exponent: it must never meet
    a float that orjson writes in a third way and RFC 8785 in another."""
    for wrapped in ({"x": number}, [number, 1], [1, number]):
        assert float_marks(orjson.dumps(wrapped)) or orjson.dumps(wrapped) == rfc8785.dumps(wrapped)
    written = orjson.dumps([number])
    if written != rfc8785.dumps([number]):
        assert float_marks(written), written
