from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from audit.models import Action
        from audit.services import on_record
        from notifications.selectors import reviewers_to_tell
        from notifications.services import HANDLERS, on_audit_event, on_review_requested

        # Called inside the transaction of the events they write e-mails for: e-mails are written with the
        # change. A review request only when someone could be told (asked in the audit append on PostgreSQL).
        requested = Action.PROMOTION_REQUESTED
        on_record(on_review_requested, actions=[requested], wanted=reviewers_to_tell)
        on_record(on_audit_event, actions=[action for action in HANDLERS if action != requested])
