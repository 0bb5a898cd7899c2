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

        # The asset page's promotions and the link to request one (registry never imports approvals).
        from approvals.views import asset_promotions_section, request_promotion_action
        from registry.sections import register_asset_section, register_version_action

        register_asset_section(asset_promotions_section)
        register_version_action(request_promotion_action)
