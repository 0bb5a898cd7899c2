"""Readiness checks: each answers within a bounded time and names what failed, logged once per outage.

A probe that waits on a dead dependency holds a web worker for as long as it waits, so every check has its own
short deadline (CHECK_TIMEOUT): the database statement and connection, the broker's connection and socket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager, suppress

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction

logger = logging.getLogger(__name__)

# Seconds one check may take (connection and answer); a probe runs its checks one after another.
CHECK_TIMEOUT = 1.0

OK = "ok"
UNAVAILABLE = "unavailable"

_failing: set[str] = set()
_failing_lock = threading.Lock()


def transition(key: str, ok: bool) -> bool | None:
    """Record whether key (a check, or anything that fails by outages) works now: True when it just recovered,
    False when it just started failing, None when nothing changed. The caller logs the change: once per
    outage."""
    with _failing_lock:
        was_failing = key in _failing
        if ok:
            _failing.discard(key)
        else:
            _failing.add(key)
    if ok == was_failing:
        return ok
    return None


def failing(key: str) -> bool:
    """Whether key failed last time (in this process) and has not worked since."""
    return key in _failing


def describe(error: BaseException | str | None) -> str:
    """An error for a log line: the exception's type and text, or the text given."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def note(check: str, ok: bool, error: BaseException | str | None = None) -> None:
    """Log a check's failure when it starts failing and its recovery when it ends: once per outage, not once
    per probe (a load balancer probes every few seconds) nor per request that met it (core/outage.py)."""
    change = transition(check, ok)
    if change is False:
        logger.error("readiness: %s unavailable: %s", check, describe(error))
    elif change is True:
        logger.info("readiness: %s available again", check)


def discard_connections() -> None:
    """Close this thread's database connections (outside a transaction) after an error that says the server
    cannot be reached: the next statement connects afresh instead of failing on a dead persistent connection
    (CONN_MAX_AGE), whether or not the request's end closes it."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block:
            # Closing a dead connection may complain; it is dropped all the same.
            with suppress(DatabaseError):
                conn.close()


@contextmanager
def bounded_cursor():
    """A cursor in a transaction whose statements end within CHECK_TIMEOUT (PostgreSQL: statement_timeout,
    local to the transaction; the connection itself is bounded by connect_timeout in the database
    settings)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # set_config, not SET: a SET statement takes no bound parameter (server-side binding).
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", [str(int(CHECK_TIMEOUT * 1000))]
            )
        yield cursor


def check_database() -> str:
    """The database answers a statement within CHECK_TIMEOUT (bounded_cursor)."""
    try:
        with bounded_cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        note("database", False, exc)
        discard_connections()
        return UNAVAILABLE
    note("database", True)
    return OK


def check_broker() -> str | None:
    """The broker accepts a connection within CHECK_TIMEOUT, with no retry; None when none is configured."""
    url = settings.CELERY_BROKER_URL
    if not url:
        return None
    from kombu import Connection

    options = {"socket_timeout": CHECK_TIMEOUT, "socket_connect_timeout": CHECK_TIMEOUT}
    try:
        with Connection(url, connect_timeout=CHECK_TIMEOUT, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT)
    except Exception as exc:
        note("broker", False, exc)
        return UNAVAILABLE
    note("broker", True)
    return OK


# Checks of the apps above core, by name (an app's AppConfig.ready registers them: core imports no app).
_registered: dict[str, Callable[[], str | None]] = {}


def register_check(name: str, check: Callable[[], str | None]) -> None:
    """Add a readiness check: it answers OK, another short word naming the failure, or None when it does not
    apply; it must be bounded in time like the others."""
    _registered[name] = check


def readiness() -> dict[str, str]:
    """Every check's answer by name ("ok" or what failed); checks that do not apply are left out."""
    checks = {"database": check_database(), "broker": check_broker()}
    checks.update({name: check() for name, check in _registered.items()})
    return {name: value for name, value in checks.items() if value is not None}
