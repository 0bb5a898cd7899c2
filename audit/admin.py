from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, so the admin can neither add, change nor delete."""

    list_display = ["seq", "occurred_at", "action", "target_repr", "actor_repr", "source"]
    list_filter = ["action", "source", "actor_kind"]
    search_fields = ["target_repr", "actor_repr"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
