"""Canonical event bodies (RFC 8785) and the hashes over them (RFC 6962 leaf, linear chain)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from decimal import Decimal

import orjson
import rfc8785

GENESIS_CHAIN = bytes(32)
MAX_SAFE_INT = 2**53 - 1


def format_time(moment: dt.datetime) -> str:
    """Fixed-width UTC time: YYYY-MM-DDTHH:MM:SS.ffffffZ, so that equal instants give equal bytes."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(value):
    """Restrict a value to what hashes the same everywhere: no floats, no big integers, string keys."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite numbers cannot be recorded")
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, dt.date | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(item) for item in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


# RFC 8785 of a value made only of dicts with str keys, lists, tuples, str, int, bool and None (no float, no
# subclass: a TextChoices member, an IntEnum) is compact JSON with its keys sorted, its strings escaped as
# JSON requires (`"`, `\\`, control characters: `\\b \\t \\n \\f \\r` short, the others `\\u00xx`; the
# rest raw UTF-8) and its integers, within +/-(2^53 - 1), in decimal: what orjson writes with these options.
# orjson sorts keys by code point and JCS by UTF-16 code unit, which differ only where a character outside the
# Basic Multilingual Plane is compared with one from U+E000 up, so a result with a 4-byte UTF-8 character
# anywhere is left to the rfc8785 encoder (audit/canonical_check.py proves stored bodies canonical the same
# way).
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_BELOW_4_BYTE = bytes(range(0xF0))  # the bytes that do not start a 4-byte UTF-8 sequence
_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value) -> bool:
    """Whether value holds only the exact types orjson writes as RFC 8785 does (see above)."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not _plain(item)):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110 - a loop, not all() over a generator: this runs on every event
            if type(item) not in _SCALARS and not _plain(item):
                return False
        return True
    return kind in _SCALARS


def canonical_bytes(body: dict) -> bytes:
    """The RFC 8785 (JCS) bytes of body: what `rfc8785.dumps(body)` returns, and the same errors.

    orjson writes them (C speed, a fiftieth of the time) when body is plain JSON data (see above); anything
    else (a float, a subclass, an integer out of range, a character outside the BMP, a value neither encoder
    takes) goes to the rfc8785 encoder, which writes it or raises as it always did
    (tests/audit/test_canonical_bytes.py compares both on every kind of value)."""
    if _plain(body):
        try:
            out = orjson.dumps(body, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:  # an integer beyond 2^53 - 1, a lone surrogate, too deep
            return rfc8785.dumps(body)
        if out.isascii() or not out.translate(None, _BELOW_4_BYTE):
            return out
    return rfc8785.dumps(body)


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x02" + previous + leaf).digest()
