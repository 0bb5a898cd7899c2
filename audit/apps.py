from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from audit.metrics import AuditCollector
        from core.health import register_check
        from core.metrics import register_scrape_collector

        register_scrape_collector(AuditCollector())
        register_check("audit_signing", signing_readiness)


def signing_readiness() -> str | None:
    """For /readyz, with a witness configured: whether checkpoints are being signed, and if not, why."""
    from django.db import DatabaseError

    from audit import log, witness
    from core import health

    if witness.directory() is None:
        return None
    if health.failing("database"):  # just found down by the database check: no second connection wait
        return "unavailable"
    try:
        return log.signing_status()
    except DatabaseError:
        return "unavailable"  # the database check names the cause
