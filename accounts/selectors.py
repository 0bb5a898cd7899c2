"""Reads of accounts, teams and tokens, filtered by who is asking."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet

from accounts.models import ApiToken, TrustPolicy, User
from accounts.permissions import reads_everything, require_admin
from core.exceptions import Forbidden, InvalidInput, NotFound


def token_list_for_user(*, user) -> QuerySet[ApiToken]:
    """Admins and auditors see every token; anyone else sees their own."""
    tokens = ApiToken.objects.select_related("account", "created_by", "revoked_by").order_by("-id")
    if reads_everything(user):
        return tokens
    return tokens.filter(account=user)


def token_get_for_user(*, user, pk: int) -> ApiToken:
    token = token_list_for_user(user=user).filter(pk=pk).first()
    if token is None:
        raise NotFound("Not found.")
    return token


def service_account_list_for_user(*, user) -> QuerySet[User]:
    if not reads_everything(user):
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


# Teams and global roles: admins change them (accounts.services), admins and auditors read them. ------------


def _require_reader(user) -> None:
    if not reads_everything(user):
        raise Forbidden("Only admins and auditors may see teams and global roles.", type="permission-denied")


def team_get_for_user(*, user, name: str) -> Group:
    """The team, for admins and auditors (403 for anyone else, whether it exists or not; then 404)."""
    _require_reader(user)
    team = Group.objects.filter(name=name).first()
    if team is None:
        raise NotFound("Not found.")
    return team


def team_member_list(*, team: Group) -> QuerySet[User]:
    return team.user_set.order_by("username")


def team_list_for_user(*, user) -> QuerySet[Group]:
    """Every team with its number of members, by name (one query)."""
    _require_reader(user)
    return Group.objects.annotate(members=Count("user")).order_by("name")


def account_get_for_user(*, user, name: str) -> User:
    """An account's roles and flags, for admins and auditors (403 for anyone else; then 404 if unknown)."""
    _require_reader(user)
    account = User.objects.filter(username=name).first()
    if account is None:
        raise NotFound("Not found.")
    return account


def account_list_for_user(*, user) -> QuerySet[User]:
    """Every account, people and service accounts, by name, with their teams (two queries)."""
    _require_reader(user)
    return User.objects.prefetch_related("groups").order_by("username")


def account_roles(account: User) -> dict:
    """The account's global role and flags as accounts.services.user_update takes them.

    `global_role` is admin, auditor or none; `can_create_assets` is the account's own `registry.add_asset`
    permission (admins create assets anyway).
    """
    return {
        "global_role": account.global_role or "none",
        "is_active": account.is_active,
        "is_superuser": account.is_superuser,
        "is_staff": account.is_staff,
        "can_create_assets": account.user_permissions.filter(
            content_type__app_label="registry", codename="add_asset"
        ).exists(),
    }


def trust_policy_list_for_user(*, user) -> QuerySet[TrustPolicy]:
    """Admins and auditors see every trust policy; nobody else sees any."""
    if not reads_everything(user):
        raise Forbidden("Only admins and auditors may see trust policies.", type="permission-denied")
    return TrustPolicy.objects.select_related("account", "created_by").order_by("name")


def trust_policy_get_for_user(*, user, pk: int) -> TrustPolicy:
    policy = trust_policy_list_for_user(user=user).filter(pk=pk).first()
    if policy is None:
        raise NotFound("Not found.")
    return policy
