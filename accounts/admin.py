"""The Django admin for accounts: who may act is shown here, never changed here.

Global roles, superuser and staff status, the active flag, team memberships and permissions decide who may
administer, create and review; they change only through accounts.services (the access pages, the API), which
audit each change. So the admin shows them read-only, and deletes neither accounts nor teams.

A person added here is created by accounts.services.person_create (an `account.created` event). Passwords are
never set here for someone else: a person changes their own on /accounts/password/ (audited), and a forgotten
one is set on the server with `manage.py changepassword` (audited too).
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from accounts import services
from accounts.models import ApiToken, User
from accounts.permissions import is_admin
from core.admin import ReadOnlyAdmin
from core.web import web_source

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


class PersonChangeForm(UserChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "password" in self.fields:
            self.fields["password"].help_text = (
                "Only its person changes a password (the Password page); a forgotten one is set on the "
                "server with manage.py changepassword. Both are audit events."
            )


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = PersonChangeForm
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

    def has_add_permission(self, request):
        # The rule of person_create, which creates the account.
        return is_admin(request.user) and super().has_add_permission(request)

    def add_view(self, request, form_url="", extra_context=None):
        # Django's add view runs in a transaction; person_create runs in its own (a durable one).
        return self._add_view(request, form_url, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None:
            return self._changeform_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        usable = form.cleaned_data.get("set_usable_password", True)
        created = services.person_create(
            actor=request.user,
            source=web_source(request),
            username=obj.username,
            password=form.cleaned_data["password1"] if usable else None,
        )
        # The admin goes on with the form's instance (its log entry, the redirect): make it the new account.
        obj.pk, obj.password = created.pk, created.password
        obj._state.adding, obj._state.db = False, created._state.db

    def user_change_password(self, request, id, form_url=""):
        """Nobody sets another person's password here; one's own is changed on the audited page."""
        user = self.get_object(request, unquote(id))
        if user is None:
            raise Http404("No such account.")
        if user.pk == request.user.pk:
            return HttpResponseRedirect(reverse("accounts:password"))
        raise PermissionDenied


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
class ApiTokenAdmin(ReadOnlyAdmin):
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
