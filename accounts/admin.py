"""The Django admin for accounts: who may act is shown here, never changed here.

Global roles, superuser and staff status, the active flag, team memberships and permissions decide who may
administer, create and review; they change only through accounts.services (the access pages, the API), which
audit each change. So the admin shows them read-only, and deletes neither accounts nor teams.
"""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from accounts.models import ApiToken, User

# Everything that decides who may act: read-only in the admin (see the module docstring).
ACCESS_FIELDS = [
    "is_active",
    "is_staff",
    "is_superuser",
    "groups",
    "user_permissions",
    "global_role",
    "is_service_account",
]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "global_role", "is_service_account", "is_active", "is_superuser"]
    list_filter = ["global_role", "is_service_account", "is_active", "is_superuser"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        ("Registry", {"fields": ["global_role", "is_service_account"]}),
    ]
    readonly_fields = ACCESS_FIELDS

    def has_delete_permission(self, request, obj=None):
        # Accounts are disabled (audited), never deleted: their grants would vanish without an event.
        return False


admin.site.unregister(Group)


@admin.register(Group)
class TeamAdmin(BaseGroupAdmin):
    """Teams can be created here (a name, no members, no roles); members and roles change elsewhere."""

    @admin.display(description="Members")
    def members(self, team: Group) -> str:
        return ", ".join(team.user_set.order_by("username").values_list("username", flat=True)) or "—"

    def get_fields(self, request, obj=None):
        return ["name", "members", "permissions"] if obj is not None else ["name"]

    def get_readonly_fields(self, request, obj=None):
        # Renaming a team would rename the principal of its grants and of its audit events.
        return ["name", "members", "permissions"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        # Deleting a team would drop its grants and reviewer memberships without an event.
        return False


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
