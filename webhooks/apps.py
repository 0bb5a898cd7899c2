from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Registered here: audit and approvals sit below this app and cannot import it.
        from approvals import tasks
        from audit.services import on_record
        from webhooks import fanout, services

        # An event's messages are written in its transaction; only when a subscription could want it.
        on_record(fanout.fan_out, wanted=fanout.candidates)
        tasks.set_signing_keys(services.signing_key)  # each subscription signs with its own secret
        tasks.on_outcome(services.delivery_outcome)  # failing / recovered
