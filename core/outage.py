"""What a request answers while a dependency is down, and work after a commit that must not undo its answer.

- The database cannot be reached (refused, dropped, shutting down): 503 with `Retry-After`, a problem
  `service-unavailable` for the API and a short page otherwise; wherever the error is raised (a view, DRF's
  authentication, a template, a middleware's process_response). The outage is logged once per process, when
  it starts (ERROR, with the reason) and when a request works again (INFO), by core.health.note, which the
  readiness probe shares: a request during the outage adds no log line of its own (the access log has it).
  The connection is closed, so the next request connects again: the app recovers by itself.
- The same for the Redis cache (REDIS_URL), which the sign-in form counts failures in.
- after_commit: a callback after a commit (enqueue a delivery, count a metric) that fails is logged once per
  outage and swallowed: the change is committed, and the answer says so.

Errors that are not outages (a deadlock, a statement timeout, a lock SQLite waited too long for) are left to
the usual 500 answer.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError, connections, transaction
from django.http import HttpResponse, JsonResponse
from django.template import loader

from core import health
from core.api import PROBLEM_CONTENT_TYPE

logger = logging.getLogger(__name__)

try:
    import psycopg
except ImportError:  # SQLite only
    psycopg = None
try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:
    RedisConnectionError = RedisTimeoutError = None

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError) + (
    (psycopg.OperationalError, psycopg.InterfaceError) if psycopg else ()
)
_CACHE_ERRORS: tuple[type[BaseException], ...] = (
    (RedisConnectionError, RedisTimeoutError) if RedisConnectionError else ()
)
# PostgreSQL error codes that say the server cannot serve (SQLSTATE class 08, connection exception, and the
# server shutting down or starting up); other operational errors (deadlock, statement timeout) are the
# request's own.
_PG_SHUTDOWN = {"57P01", "57P02", "57P03"}
_SQLITE_UNAVAILABLE = {"unable to open database file", "disk I/O error"}

DEPENDENCY_NAMES = {"database": "The database", "cache": "The cache (Redis)"}


def unavailable_dependency(exc: BaseException) -> str | None:
    """The dependency that exc says cannot be reached ("database", "cache"), or None."""
    if _CACHE_ERRORS and isinstance(exc, _CACHE_ERRORS):
        return "cache"
    if not isinstance(exc, _DATABASE_ERRORS):
        return None
    cause: BaseException | None = exc
    for _ in range(5):  # Django's error wraps the driver's (raise ... from)
        if cause is None:
            break
        if psycopg is not None and isinstance(cause, psycopg.Error):
            state = cause.sqlstate
            unavailable = state is None or state.startswith("08") or state in _PG_SHUTDOWN
            return "database" if unavailable else None
        if isinstance(cause, sqlite3.Error):
            return "database" if str(cause) in _SQLITE_UNAVAILABLE else None
        cause = cause.__cause__
    return "database"  # no driver error behind it: Django's own (a connection already closed)


def unavailable_detail(dependency: str) -> str:
    seconds = settings.OUTAGE_RETRY_AFTER_SECONDS
    return f"{DEPENDENCY_NAMES[dependency]} is unavailable. Try again in {seconds} seconds."


def met(dependency: str, exc: BaseException) -> None:
    """A request met the outage: log it if it is new, and drop the broken database connection."""
    health.note(dependency, False, exc)
    if dependency == "database":
        health.discard_connections()


def finish(response):
    """Retry-After on a 503 answer, not logged again by django.request (health.note logged the outage)."""
    response["Retry-After"] = str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    response._has_been_logged = True
    return response


def problem_body(dependency: str) -> dict:
    return {
        "type": "service-unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": unavailable_detail(dependency),
    }


def unavailable_response(request, exc: BaseException) -> HttpResponse | None:
    """The 503 answer when exc says a dependency is down (None otherwise): problem+json under /api/, a page
    elsewhere."""
    dependency = unavailable_dependency(exc)
    if dependency is None:
        return None
    met(dependency, exc)
    if request.path.startswith("/api/"):
        response = JsonResponse(problem_body(dependency), status=503, content_type=PROBLEM_CONTENT_TYPE)
    else:
        # The layout, rendered without the request: no session, user or messages to load from the database.
        context = {"user": AnonymousUser(), "messages": (), "detail": unavailable_detail(dependency)}
        response = HttpResponse(loader.render_to_string("503.html", context), status=503)
    return finish(response)


def _database_worked() -> bool:
    """This thread holds a database connection that raised no error: the outage closed the one before it, so
    this one was opened, and used, by the request just served."""
    return any(
        conn.connection is not None and not conn.errors_occurred
        for conn in connections.all(initialized_only=True)
    )


class OutageMiddleware:
    """503 for an outage raised by a view (process_exception); core.views.server_error answers those raised by
    a middleware. A request that used the database without error ends the database's outage (logged once)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if health.failing("database") and response.status_code < 500 and _database_worked():
            health.note("database", True)
        return response

    def process_exception(self, request, exception):
        return unavailable_response(request, exception)


# After commit --------------------------------------------------------------------------------------------


def after_commit(func: Callable[[], object], *, what: str) -> None:
    """transaction.on_commit(func) for work that follows a committed change (enqueue a delivery, count it):
    a failure is logged once per outage (the first one with its traceback, ERROR; the recovery at INFO) and
    swallowed, so the request answers the committed result, and the callbacks registered after it still
    run."""

    def run() -> None:
        try:
            func()
        except Exception as exc:
            if health.transition(f"after-commit:{what}", False) is False:
                logger.error(
                    "after commit: %s failed (the change is committed): %s",
                    what,
                    health.describe(exc),
                    exc_info=True,
                )
            return
        if health.transition(f"after-commit:{what}", True):
            logger.info("after commit: %s works again", what)

    transaction.on_commit(run, robust=True)
