from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from audit.services import on_record
        from notifications.services import HANDLERS, on_audit_event

        # Called inside the transaction of every audit event: e-mails are written with the change.
        on_record(on_audit_event, actions=HANDLERS)
