"""Cursor pagination: stable under inserts, constant cost per page.

Cursors are opaque to clients, but they come back from them: one the server did not issue (not base64, not the
server's `o`/`r`/`p` tokens, an offset past the cutoff, a position that is not a value of the ordering column)
answers 400 `invalid-cursor` before any query runs.
"""

import binascii
import re
from base64 import b64decode
from urllib import parse

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from core.parsers import ASCII_DIGITS, MAX_SAFE_INT, ascii_int

_POSITION = re.compile(r"[0-9]{1,16}")  # the orderings' integer columns hold positive ids and numbers
_MAX_CURSOR_LENGTH = 1000


def _is_integer_column(model, name: str) -> bool:
    """Whether the ordering column `name` (possibly across relations, a__b) holds integers."""
    field = None
    try:
        for part in name.split(LOOKUP_SEP):
            field = model._meta.get_field(part)
            model = field.related_model
    except (FieldDoesNotExist, AttributeError):
        return False
    return isinstance(field, models.IntegerField | models.AutoField)


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        # Larger sizes are reduced to the maximum, as documented; anything but a positive number is refused.
        message = f"must be a whole number from 1 (larger ones count as {self.max_page_size})"
        return min(ascii_int(raw, self.page_size_query_param, minimum=1, message=message), self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        column = self.get_ordering(request, queryset, view)[0].lstrip("-")
        self._integer_position = _is_integer_column(queryset.model, column)
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            if len(encoded) > _MAX_CURSOR_LENGTH:
                raise ValueError("too long")
            querystring = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            pairs = parse.parse_qsl(
                querystring, keep_blank_values=True, strict_parsing=bool(querystring), errors="strict"
            )
            tokens = dict(pairs)
            if len(tokens) != len(pairs) or not set(tokens) <= {"o", "r", "p"}:
                raise ValueError("unknown or repeated tokens")
            offset = tokens.get("o", "0")
            if not ASCII_DIGITS.fullmatch(offset) or int(offset) > self.offset_cutoff:
                raise ValueError("offset")
            if tokens.get("r", "0") not in ("0", "1"):
                raise ValueError("reverse")
            position = tokens.get("p")
            if position is not None and "\x00" in position:
                raise ValueError("position")
            integer = position is not None and getattr(self, "_integer_position", False)
            if integer and (not _POSITION.fullmatch(position) or int(position) > MAX_SAFE_INT):
                raise ValueError("position")
        except (ValueError, UnicodeError, binascii.Error):
            raise NotFound(self.invalid_cursor_message) from None
        return pagination.Cursor(offset=int(offset), reverse=tokens.get("r") == "1", position=position)


class AssetPagination(CursorPagination):
    ordering = "name"


class VersionPagination(CursorPagination):
    ordering = "-number"
