from django.contrib import admin

from audit.models import AuditEvent
from core.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the log is append-only, so the admin can neither add, change nor delete."""

    list_display = ["seq", "occurred_at", "action", "target_repr", "actor_repr", "source"]
    list_filter = ["action", "source", "actor_kind"]
    search_fields = ["target_repr", "actor_repr"]
