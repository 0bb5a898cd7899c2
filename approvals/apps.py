from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from approvals.metrics import OutboxCollector
        from core.metrics import register_scrape_collector

        register_scrape_collector(OutboxCollector())
