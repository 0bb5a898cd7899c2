"""Readiness of the outbox: no pending message has waited past its due time for longer than
OUTBOX_LAG_READY_SECONDS (a worker, the broker or beat has stopped delivering).

Another outbox (e.g. notifications' e-mail) joins the check with add_outbox: the check answers for the most
overdue message of all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from approvals.models import OutboxMessage
from core import health

LAGGING = "lagging"


def _callbacks() -> QuerySet:
    return OutboxMessage.objects.filter(status=OutboxMessage.State.PENDING)


# Each gives the pending messages of one outbox, with a next_attempt_at column under an index that starts with
# the pending status (OutboxMessage's outbox_due): the oldest due one is one index probe.
_outboxes: list[Callable[[], QuerySet]] = [_callbacks]


def add_outbox(pending: Callable[[], QuerySet]) -> None:
    """Have the check cover another outbox: pending() gives its pending messages (with next_attempt_at)."""
    if pending not in _outboxes:
        _outboxes.append(pending)


def oldest_due() -> dt.datetime | None:
    """When the most overdue pending message of all outboxes became due (None when none is pending)."""
    times = [
        pending().order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
        for pending in _outboxes
    ]
    return min((each for each in times if each is not None), default=None)


def check_outbox() -> str | None:
    """OK, LAGGING when a message is overdue by more than OUTBOX_LAG_READY_SECONDS, UNAVAILABLE when the
    database does not answer within CHECK_TIMEOUT; None (left out) when the limit is 0."""
    limit = settings.OUTBOX_LAG_READY_SECONDS
    if not limit:
        return None
    if health.failing("database"):  # just found down by the database check: no second wait
        return health.UNAVAILABLE
    try:
        with health.bounded_cursor():
            due = oldest_due()
    except Exception as exc:
        health.note("outbox", False, exc)
        return health.UNAVAILABLE
    lag = (timezone.now() - due).total_seconds() if due else 0.0
    if lag > limit:
        health.note("outbox", False, f"the oldest pending message is {lag:.0f} s overdue (limit {limit} s)")
        return LAGGING
    health.note("outbox", True)
    return health.OK
