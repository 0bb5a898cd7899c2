from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import ApiToken, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "global_role", "is_service_account", "is_active", "is_superuser"]
    list_filter = ["global_role", "is_service_account", "is_active", "is_superuser"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        ("Registry", {"fields": ["global_role", "is_service_account"]}),
    ]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only: tokens are created and revoked through the API or the commands, which audit it."""

    list_display = [
        "account",
        "name",
        "lookup",
        "last4",
        "scopes",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["account__username", "name", "lookup"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
