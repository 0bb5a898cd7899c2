from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from audit.metrics import AuditCollector
        from core.metrics import register_scrape_collector

        register_scrape_collector(AuditCollector())
