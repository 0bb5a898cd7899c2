"""Log records that name their request: the request id as a context variable, a filter that puts it on every
record, django.request's 4xx answers at INFO, and the JSON formatter of production logs.

The id is the one RequestIdMiddleware sets and echoes in X-Request-ID, and the one every audit event of the
request stores in its context (core/source.py), so a log line, a response and an audit event meet on it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


class RequestIdFilter(logging.Filter):
    """Put `request_id` on every record: the request's own when django.request passes it, else the one of the
    request being served by this thread (empty outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", "") or request_id_var.get()
        return True


class ClientErrorsAtInfo(logging.Filter):
    """django.request logs every 4xx answer as a warning: a 404 or a refused token is the client's business,
    not an operator's. Lower them to INFO; 5xx answers stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.levelno == logging.WARNING and isinstance(status, int) and 400 <= status < 500:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request_id, status_code if any, exc_info
    with the traceback. The request object that django.request attaches is left out: request_id names it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "server_time"])
        kwargs.setdefault("rename_fields", {"asctime": "timestamp", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)
