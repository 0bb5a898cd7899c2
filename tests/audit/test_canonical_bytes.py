"""canonical_bytes writes exactly what the rfc8785 encoder writes, and refuses what it refuses, whichever of
its two paths (orjson for plain JSON data, rfc8785 for the rest) takes the value."""

import datetime as dt
import enum
import uuid
from collections import OrderedDict
from decimal import Decimal

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import canonical
from audit.canonical import canonical_bytes
from core.source import Channel

EXAMPLES = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def rfc8785_or_error(value):
    try:
        return rfc8785.dumps(value)
    except Exception as exc:
        return type(exc)


def ours_or_error(value):
    try:
        return canonical_bytes(value)
    except Exception as exc:
        return type(exc)


# The edges where the two encoders could differ: escapes (control characters, DEL, U+2028), characters above
# U+E000 and outside the Basic Multilingual Plane (key order), lone surrogates, integers at and beyond
# 2^53 - 1 and 2^64, floats, and types orjson writes but rfc8785 refuses or writes its own way.
edge_text = st.text(
    st.sampled_from(
        [
            *["a", "Z", "é", "\x00", "\x08", "\x1f", "\x7f", '"', "\\", "/", "\n", "\u2028", "\ue000"],
            *["\uffff", "\U0001f600", "\U00010000", "\ud800"],
        ]
    )
    | st.characters(codec="utf-8"),
    max_size=6,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 2**63, 2**64, -(2**63) - 1])
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([float("nan"), float("inf"), 1.0, 1e16, 5e-324])
    | edge_text
    | st.sampled_from([Channel.API, Level.HIGH, Colour.RED, uuid.UUID(int=7), Decimal("1.5")])
    | st.sampled_from([dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.date(2026, 1, 1), b"x"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(edge_text, inner, max_size=4)
        | st.dictionaries(edge_text, inner, max_size=3).map(OrderedDict)
        | st.dictionaries(st.integers(0, 3), inner, max_size=2)
    ),
    max_leaves=12,
)


@EXAMPLES
@given(st.dictionaries(edge_text, values, max_size=6))
def test_the_same_bytes_or_the_same_error_as_rfc8785(value):
    assert ours_or_error(value) == rfc8785_or_error(value)


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@EXAMPLES
@given(st.dictionaries(st.text(max_size=8), plain, max_size=6))
def test_plain_json_data_takes_the_quick_path_and_agrees(value):
    assert canonical._plain(value)
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_an_audit_body_takes_the_quick_path(monkeypatch):
    body = {
        "action": "version.created",
        "actor": {"kind": "service_account", "id": 2, "name": "ci-bot"},
        "asset_id": 1,
        "changes": {"after": {"number": 3, "metrics": {"auc": "0.9"}, "lineage": [], "note": "naïve \n ✓"}},
        "context": {"request_id": "0f8e", "ip": "127.0.0.1", "credential": {"kind": "token", "token_id": 4}},
    }
    expected = rfc8785.dumps(body)
    monkeypatch.setattr(canonical.rfc8785, "dumps", lambda value: pytest.fail("took the slow path"))
    assert canonical_bytes(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"n": 1.5},  # a float: JCS writes it its own way
        {"\U0001f600": 1, "\ue000": 2},  # keys that sort differently by code point and by UTF-16
        {"n": 2**53},  # out of JCS's integer range: rfc8785 refuses it
        {"c": Channel.API},  # a str subclass
        {"u": uuid.UUID(int=1)},  # orjson writes it, rfc8785 refuses it
    ],
)
def test_what_orjson_would_write_otherwise_goes_to_rfc8785(body, monkeypatch):
    expected, calls = rfc8785_or_error(body), []
    real = canonical.rfc8785.dumps
    monkeypatch.setattr(canonical.rfc8785, "dumps", lambda value: calls.append(value) or real(value))
    assert ours_or_error(body) == expected
    assert calls == [body]


def test_orjson_writes_an_integer_beyond_the_range_only_as_an_error():
    # The quick path relies on OPT_STRICT_INTEGER refusing what rfc8785 refuses (then rfc8785 raises).
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(2**53, option=orjson.OPT_STRICT_INTEGER)
    assert orjson.dumps(2**53 - 1, option=orjson.OPT_STRICT_INTEGER) == b"9007199254740991"
