"""Who may act, as far as the account alone decides: the global roles. Roles on assets are in
registry/permissions.py, which builds on these.

Each rule is one function here. Selectors, services, views and the audit pages ask these functions; templates
ask the User properties (`is_registry_admin`, `is_auditor`, `reads_everything`), which call them.
"""

from __future__ import annotations

from django.db.models import Q

from accounts.models import GlobalRole
from core.exceptions import Forbidden


def is_read_only_account(user) -> bool:
    """An auditor account, active or disabled: it changes nothing and holds no asset role beyond view.

    Protects the auditor's independence: grants forced into the tables for it count as view only
    (registry.permissions.granted_roles), it creates no assets, and it is never an admin, superuser or not.
    """
    return getattr(user, "global_role", "") == GlobalRole.AUDITOR


def is_admin(user) -> bool:
    """Registry admins manage every asset, grant, account and token; superusers count (never as reviewers)."""
    return bool(
        getattr(user, "is_active", False)
        and not is_read_only_account(user)
        and (user.is_superuser or user.global_role == GlobalRole.ADMIN)
    )


# The rule of is_admin() as a filter on users, for counting admins in the database.
ADMINS = (
    Q(is_active=True)
    & (Q(is_superuser=True) | Q(global_role=GlobalRole.ADMIN))
    & ~Q(global_role=GlobalRole.AUDITOR)
)


def is_auditor(user) -> bool:
    """Auditors read everything, the audit log included, and change nothing."""
    return bool(getattr(user, "is_active", False) and is_read_only_account(user))


def reads_everything(user) -> bool:
    """Admins and auditors see every asset, grant list, service account, token and the audit log."""
    return is_admin(user) or is_auditor(user)


def can_ever_review(user) -> bool:
    """Only active people who are not auditors can review; service accounts never do."""
    return bool(
        getattr(user, "is_active", False)
        and not getattr(user, "is_service_account", False)
        and not is_read_only_account(user)
    )


def require_admin(actor) -> None:
    """Raise Forbidden unless actor is a registry admin. The system actor (None) may do anything."""
    if actor is not None and not is_admin(actor):
        raise Forbidden("Only a registry admin may do this.", type="permission-denied")
