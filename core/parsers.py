"""The API's JSON parser, and the limits every JSON value sent to the API must keep.

Request bodies end up hashed into the audit log (RFC 8785), stored in JSON columns and compared by gates, so
the limits are those every step can honour: integers within +/-(2^53 - 1) (the range RFC 8785 and JavaScript
represent exactly), finite numbers only, valid Unicode strings without NUL, and at most MAX_JSON_DEPTH nested
arrays and objects (deep enough for any real document, shallow enough that no recursive step can exhaust the
stack). A body outside them is refused with a 400 problem before any view sees it. Whole numbers in query
parameters follow one rule too (ascii_int).
"""

from __future__ import annotations

import json
import math
import re

from django.conf import settings
from rest_framework import exceptions, parsers

from core.exceptions import InvalidInput

MAX_SAFE_INT = 2**53 - 1
MAX_JSON_DEPTH = 64
# Longer digit strings are out of range anyway; checking the length first spares converting them.
_MAX_INT_DIGITS = len(str(MAX_SAFE_INT)) + 1
_SURROGATE = re.compile("[\ud800-\udfff]")
ASCII_DIGITS = re.compile(r"[0-9]+")

INT_RANGE_MESSAGE = f"must be an integer between -{MAX_SAFE_INT} and {MAX_SAFE_INT}"
FINITE_MESSAGE = "must be a finite number"
DEPTH_MESSAGE = f"nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"


def ascii_int(
    raw: str, name: str, *, minimum: int = 0, maximum: int = MAX_SAFE_INT, message: str = ""
) -> int:
    """A query parameter holding a whole number: ASCII digits only (str.isdigit() also accepts '²', which
    int() refuses), within [minimum, maximum]; 400 naming the parameter otherwise."""
    if not ASCII_DIGITS.fullmatch(raw) or len(raw) > len(str(maximum)) or not minimum <= int(raw) <= maximum:
        raise InvalidInput.field(name, message or f"must be a whole number between {minimum} and {maximum}")
    return int(raw)


class InvalidJSON(exceptions.ParseError):
    """The body is not JSON (400 invalid-json)."""

    problem_type = "invalid-json"


class TooDeep(exceptions.ParseError):
    """The body nests arrays and objects deeper than MAX_JSON_DEPTH (400 too-deep)."""

    problem_type = "too-deep"


class TooLarge(exceptions.APIException):
    """The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE (413 too-large)."""

    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"
    problem_type = "too-large"


class _OutOfRange:
    """Stands in for an integer literal too long to be in range (it is refused with its field named)."""


def _parse_int(text: str):
    digits = len(text.lstrip("-"))
    return int(text) if digits <= _MAX_INT_DIGITS else _OutOfRange()


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _bad_characters(value: str) -> str | None:
    if "\x00" in value:
        return "NUL characters"
    if _SURROGATE.search(value):
        return "an unpaired surrogate (not valid Unicode)"
    return None


def json_problem(value, path: str = "", *, depth: int = 0) -> tuple[str, str] | None:
    """The first (path, message) in value that the registry cannot store, hash and compare the same way.

    Integers outside +/-(2^53 - 1), non-finite numbers, strings with NUL or unpaired surrogates, arrays and
    objects nested more than MAX_JSON_DEPTH levels (DEPTH_MESSAGE). Paths are dotted and indexed relative to
    value (`a.b`, `[0].value`); "" is value itself. `depth` counts the arrays and objects around value.
    """
    if isinstance(value, dict | list | tuple) and depth >= MAX_JSON_DEPTH:
        return path, DEPTH_MESSAGE
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, _OutOfRange):
        return path, INT_RANGE_MESSAGE
    if isinstance(value, int) and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return path, INT_RANGE_MESSAGE
    if isinstance(value, float) and not math.isfinite(value):
        return path, FINITE_MESSAGE
    if isinstance(value, str):
        bad = _bad_characters(value)
        return (path, f"must not contain {bad}") if bad else None
    if isinstance(value, dict):
        for key, item in value.items():
            bad = _bad_characters(str(key))
            if bad:
                return path, f"has a key containing {bad}"
            found = json_problem(item, _key(path, str(key)), depth=depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = json_problem(item, f"{path}[{index}]", depth=depth + 1)
            if found:
                return found
    return None


def loads(text: str):
    """Parse JSON text within the limits above (InvalidJSON, TooDeep or InvalidInput otherwise).

    The depth is checked on the parsed value: the C decoder is linear, and nesting deep enough to exhaust the
    interpreter's recursion limit (about 900 levels) raises RecursionError inside it, which is refused alike.
    """
    try:
        # NaN and +/-Infinity parse to floats here so that the check below names their field.
        data = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise TooDeep(f"The body {DEPTH_MESSAGE}.") from None
    except ValueError as exc:
        raise InvalidJSON(f"The body is not valid JSON: {exc}") from None
    found = json_problem(data)
    if found:
        path, message = found
        if message == DEPTH_MESSAGE:
            raise TooDeep(f"The body {DEPTH_MESSAGE}" + (f" (at {path})." if path else "."))
        raise InvalidInput.field(path or "body", message)
    return data


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the registry's limits: size, depth, number range, strings."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise TooLarge(f"The request body is larger than {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJSON("The body is not valid JSON: it is not UTF-8.") from None
        return loads(text)
