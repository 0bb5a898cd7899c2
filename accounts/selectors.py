"""Reads of accounts, tokens and grants, filtered by who is asking."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import QuerySet

from accounts.models import ApiToken, User
from core.exceptions import Forbidden, InvalidInput, NotFound
from registry.models import Asset, AssetGroupObjectPermission, AssetUserObjectPermission
from registry.permissions import ROLE_OF_CODENAME, Role, effective_roles, require_admin


def token_list_for_user(*, user) -> QuerySet[ApiToken]:
    """Admins and auditors see every token; anyone else sees their own."""
    tokens = ApiToken.objects.select_related("account", "created_by", "revoked_by").order_by("-id")
    if user.is_registry_admin or user.is_auditor:
        return tokens
    return tokens.filter(account=user)


def token_get_for_user(*, user, pk: int) -> ApiToken:
    token = token_list_for_user(user=user).filter(pk=pk).first()
    if token is None:
        raise NotFound("Not found.")
    return token


def service_account_list_for_user(*, user) -> QuerySet[User]:
    if not (user.is_registry_admin or user.is_auditor):
        raise Forbidden("Only admins and auditors may list service accounts.", type="permission-denied")
    return User.objects.filter(is_service_account=True).prefetch_related("groups").order_by("username")


def account_get(*, name: str, field: str = "account") -> User:
    account = User.objects.filter(username=name).first()
    if account is None:
        raise InvalidInput.field(field, f"no account named {name!r}")
    return account


def token_account_get(*, user, name: str) -> User:
    """The account a new token is for. The caller's right comes first: a caller who may not create tokens
    for others gets the same 403 whether or not the named account exists."""
    if name != user.username:
        require_admin(user)
    return account_get(name=name)


def team_get(*, name: str, field: str = "team") -> Group:
    team = Group.objects.filter(name=name).first()
    if team is None:
        raise InvalidInput.field(field, f"no team named {name!r}")
    return team


def principal_get(*, principal_type: str, name: str, field: str = "principal") -> User | Group:
    if principal_type == "team":
        return team_get(name=name, field=field)
    if principal_type == "user":
        return account_get(name=name, field=field)
    raise InvalidInput.field("principal_type", "must be 'user' or 'team'")


def grant_list_for_user(*, user, asset: Asset) -> list[dict]:
    """Who holds which role on asset: for its managers, admins and auditors."""
    if not (user.is_auditor or Role.MANAGE in effective_roles(user, asset)):
        raise Forbidden(f"You need the 'manage' role on {asset} to see its grants.", type="permission-denied")
    rows = [
        {
            "principal_type": "user",
            "principal": grant.user.username,
            "service_account": grant.user.is_service_account,
            "role": ROLE_OF_CODENAME[grant.permission.codename],
        }
        for grant in AssetUserObjectPermission.objects.filter(content_object=asset).select_related(
            "user", "permission"
        )
        if grant.permission.codename in ROLE_OF_CODENAME
    ]
    rows += [
        {
            "principal_type": "team",
            "principal": grant.group.name,
            "service_account": False,
            "role": ROLE_OF_CODENAME[grant.permission.codename],
        }
        for grant in AssetGroupObjectPermission.objects.filter(content_object=asset).select_related(
            "group", "permission"
        )
        if grant.permission.codename in ROLE_OF_CODENAME
    ]
    return sorted(rows, key=lambda row: (row["principal_type"], row["principal"], row["role"]))
