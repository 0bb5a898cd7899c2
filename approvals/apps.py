from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from approvals.health import check_outbox
        from approvals.metrics import OutboxCollector
        from core.health import register_check
        from core.metrics import register_scrape_collector

        register_scrape_collector(OutboxCollector())
        register_check("outbox", check_outbox)
