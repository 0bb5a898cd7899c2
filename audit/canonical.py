"""Canonical event bodies (RFC 8785) and the hashes over them (RFC 6962 leaf, linear chain)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from decimal import Decimal

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


def canonical_bytes(body: dict) -> bytes:
    return rfc8785.dumps(body)


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x02" + previous + leaf).digest()
