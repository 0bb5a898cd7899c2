"""A quick proof that a stored body is RFC 8785 canonical JSON, for the shapes event bodies have.

RFC 8785 (JCS) of a value without floats is compact JSON with sorted keys, strings escaped as JSON requires
(`"`, `\\`, control characters: `\\b \\t \\n \\f \\r` short, the others `\\u00xx`; everything else as raw
UTF-8) and integers in decimal. orjson (C speed) writes exactly that with `OPT_SORT_KEYS`, and
`OPT_STRICT_INTEGER` refuses integers outside JCS's ±(2⁵³-1), except in two places:

- it sorts keys by code point, JCS by UTF-16 code unit: they differ only between a character outside the
  Basic Multilingual Plane (4 bytes in UTF-8) and one from U+E000 up;
- it writes floats its own way (`1.0`, `1e+16`; JCS `1`, `10000000000000000`).

So a body is canonical when orjson reads it as an object and writes the same bytes back, and it holds
neither a 4-byte character nor a float. Floats are found in the bytes orjson wrote, with the digits (and the
lower-case letters but `e`) taken out, `}` `]` written `,` and `+` written `-`: a fraction leaves `.` before
the end of its number (`1.5,` `1.0}` become `.,`), an exponent leaves `e-,` (`1e+16,` `1.5e+300]` `5e-324}`;
orjson always writes its sign, a test holds it to that). Only a string holding such bytes (`"v1.5, beta"`)
makes the proof give up for nothing. When it gives up (`None`), the caller decides with the `rfc8785`
encoder; it never says yes to a body that the encoder would not write byte for byte
(tests/audit/test_canonical_check.py, with Hypothesis). Byte operations in C rather than a walk over the
parsed object or a regular expression: a third of the time.
"""

from __future__ import annotations

import json

import orjson
import rfc8785

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_BELOW_4_BYTE = bytes(range(0xF0))  # the bytes that do not start a 4-byte UTF-8 sequence
_NOT_IN_FLOATS = b"0123456789abcdfghijklmnopqrstuvwxyz"
_ENDS = bytes.maketrans(b"}]E+", b",,e-")


def float_marks(body: bytes) -> bool:
    """Whether the bytes orjson wrote may hold a float (see above)."""
    skeleton = body.translate(_ENDS, _NOT_IN_FLOATS)
    return b".," in skeleton or b"e-," in skeleton


def canonical_object(body: bytes) -> dict | None:
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
    if not body.isascii() and body.translate(None, _BELOW_4_BYTE):
        return None
    return None if float_marks(body) else parsed


def body_problem(seq: int, body: bytes) -> str:
    """What is wrong with the stored body of event `seq`, or '' (the verifiers' full check of a body)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"altered: seq {seq} is not JSON"
    except RecursionError:
        return f"altered: seq {seq} nests too deeply to read"
    if not isinstance(parsed, dict):
        return f"altered: seq {seq} is not a JSON object"
    stated = parsed.get("seq")
    if not isinstance(stated, int) or isinstance(stated, bool) or stated != seq:
        return f"reordered: the event stored at seq {seq} says it is seq {json.dumps(stated)}"
    # The quick proof first, else the full RFC 8785 encoder decides.
    try:
        canonical = canonical_object(body) is not None or rfc8785.dumps(parsed) == body
    except (ValueError, RecursionError):  # e.g. a number too large for JCS
        canonical = False
    if not canonical:
        return f"altered: seq {seq} is not in canonical form"
    return ""
