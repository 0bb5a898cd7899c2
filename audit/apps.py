from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def readiness(self) -> dict[str, str]:
        """For /readyz, with a witness configured: whether checkpoints are being signed, and if not, why."""
        from audit import log, witness

        if witness.directory() is None:
            return {}
        return {"audit_signing": log.signing_status()}
