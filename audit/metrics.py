"""The audit log's gauges, read from the database when /metrics is scraped: how old the latest signed
checkpoint and the latest verification run are, and whether that run found the log intact."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from audit.models import Checkpoint, VerificationRun

logger = logging.getLogger(__name__)


GAUGES = {
    "registry_audit_checkpoint_age_seconds": "Seconds since the latest signed audit checkpoint.",
    "registry_audit_checkpoint_tree_size": "Events covered by the latest signed audit checkpoint.",
    "registry_audit_verification_age_seconds": "Seconds since the latest audit_verify run finished.",
    "registry_audit_verification_ok": (
        "1 when the latest audit_verify run found the log intact, 0 when it found a problem."
    ),
}


class AuditCollector:
    """Two indexed single-row reads per scrape; no sample when the database does not answer."""

    def describe(self):
        """The names, without reading the database (the registry asks when the collector is registered)."""
        return [GaugeMetricFamily(name, text) for name, text in GAUGES.items()]

    def collect(self):
        try:
            checkpoint = Checkpoint.objects.order_by("-tree_size").values("created_at", "tree_size").first()
            run = VerificationRun.objects.order_by("-id").values("finished_at", "ok").first()
        except DatabaseError as exc:
            logger.warning("metrics: audit gauges unavailable: %s", exc)
            return
        now = timezone.now()
        values = {}
        if checkpoint is not None:
            values["registry_audit_checkpoint_age_seconds"] = (now - checkpoint["created_at"]).total_seconds()
            values["registry_audit_checkpoint_tree_size"] = checkpoint["tree_size"]
        if run is not None:
            values["registry_audit_verification_age_seconds"] = (now - run["finished_at"]).total_seconds()
            values["registry_audit_verification_ok"] = 1 if run["ok"] else 0
        for name, value in values.items():
            yield GaugeMetricFamily(name, GAUGES[name], value=value)
