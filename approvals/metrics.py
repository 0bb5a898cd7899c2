"""The outbox's gauges, read from the database when /metrics is scraped: how many messages wait, how late the
most overdue one is, and how many gave up (a receiver that never answered)."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from approvals.models import OutboxMessage

logger = logging.getLogger(__name__)

GAUGES = {
    "registry_outbox_pending": "Outbox messages not delivered yet (due now or waiting for a retry).",
    "registry_outbox_failed": "Outbox messages that exhausted their attempts.",
    "registry_outbox_lag_seconds": (
        "Seconds the most overdue pending message has waited past its due time (0 when none is overdue)."
    ),
}


class OutboxCollector:
    """One aggregate query over the outbox's (status, next_attempt_at) index per scrape."""

    def describe(self):
        return [GaugeMetricFamily(name, text) for name, text in GAUGES.items()]

    def collect(self):
        now = timezone.now()
        pending = Q(status=OutboxMessage.State.PENDING)
        try:
            row = OutboxMessage.objects.aggregate(
                pending=Count("pk", filter=pending),
                failed=Count("pk", filter=Q(status=OutboxMessage.State.FAILED)),
                oldest_due=Min("next_attempt_at", filter=pending & Q(next_attempt_at__lte=now)),
            )
        except DatabaseError as exc:
            logger.warning("metrics: outbox gauges unavailable: %s", exc)
            return
        lag = (now - row["oldest_due"]).total_seconds() if row["oldest_due"] else 0.0
        values = {
            "registry_outbox_pending": row["pending"],
            "registry_outbox_failed": row["failed"],
            "registry_outbox_lag_seconds": lag,
        }
        for name, value in values.items():
            yield GaugeMetricFamily(name, GAUGES[name], value=value)
