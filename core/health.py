"""Readiness checks: each answers within a bounded time and names what failed, logged once per outage.

A probe that waits on a dead dependency holds a web worker for as long as it waits, so every check has its own
short deadline (CHECK_TIMEOUT): the database statement and connection, the broker's connection and socket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

# Seconds one check may take (connection and answer); a probe runs its checks one after another.
CHECK_TIMEOUT = 1.0

OK = "ok"
UNAVAILABLE = "unavailable"

_failing: set[str] = set()
_failing_lock = threading.Lock()


def note(check: str, ok: bool, error: BaseException | None = None) -> None:
    """Log a check's failure when it starts failing and its recovery when it ends: once per outage, not once
    per probe (a load balancer probes every few seconds)."""
    with _failing_lock:
        was_failing = check in _failing
        if ok:
            _failing.discard(check)
        else:
            _failing.add(check)
    if not ok and not was_failing:
        logger.error("readiness: %s unavailable: %s: %s", check, type(error).__name__, error)
    elif ok and was_failing:
        logger.info("readiness: %s available again", check)


def check_database() -> str:
    """The database answers a statement within CHECK_TIMEOUT (PostgreSQL: statement_timeout; the connection
    itself is bounded by connect_timeout in the database settings)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # set_config, not SET: a SET statement takes no bound parameter (server-side binding).
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [str(int(CHECK_TIMEOUT * 1000))]
                )
            cursor.execute("SELECT 1")
    except Exception as exc:
        note("database", False, exc)
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
