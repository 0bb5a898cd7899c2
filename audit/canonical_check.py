"""A quick proof that a stored body is RFC 8785 canonical JSON, for the shapes event bodies have.

RFC 8785 (JCS) of a value without floats is compact JSON with sorted keys, strings escaped as JSON requires
(`"`, `\\`, control characters: `\\b \\t \\n \\f \\r` short, the others `\\u00xx`; everything else as raw
UTF-8) and integers in decimal. orjson (C speed) writes exactly that with `OPT_SORT_KEYS`, and
`OPT_STRICT_INTEGER` refuses integers outside JCS's ±(2⁵³-1), except in two places:

- it sorts keys by code point, JCS by UTF-16 code unit: they differ only between a character outside the
  Basic Multilingual Plane (4 bytes in UTF-8) and one from U+E000 up;
- it writes floats its own way (`1.0`, `1e+16`; JCS `1`, `10000000000000000`).

So a body is canonical when orjson reads it as an object and writes the same bytes back, and it holds
neither a 4-byte character nor a number with a fraction or an exponent. In compact JSON a number follows
`:`, `,` or `[` and ends at `,`, `}` or `]`; a string that merely looks like one (`"a:1.5,"`) only makes the
proof give up.
When it gives up (`None`), the caller decides with the `rfc8785` encoder; it never says yes to a body
that the encoder would not write byte for byte (tests/audit/test_canonical_check.py, with Hypothesis).
"""

from __future__ import annotations

import re

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_UNPROVEN = re.compile(
    rb"[\xf0-\xff]"  # a 4-byte UTF-8 sequence (or a byte no UTF-8 holds)
    rb"|[:,\[]-?[0-9]+(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)[,}\]]"  # a float
)


def canonical_object(body: bytes | memoryview) -> dict | None:
    """The body read as a JSON object when it is proven to be its own RFC 8785 form, else None.

    None says nothing either way: the body may still be canonical (a float, an emoji), not an object, or
    not JSON at all.
    """
    try:
        parsed = orjson.loads(body)
        if type(parsed) is not dict or orjson.dumps(parsed, option=_OPTIONS) != body:
            return None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    return None if _UNPROVEN.search(body) else parsed
