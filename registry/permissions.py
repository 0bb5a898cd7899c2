"""Who may see and do what on an asset: roles granted per asset (django-guardian), plus global roles.

Roles are granted on the asset only; versions, evaluations, lineage and stage pointers inherit from it.
Any role makes the asset visible. `manage` also lets its holder contribute and request promotions;
`review` is never implied by anything (separation of duties), not even by the admin role. The global roles
(admin, auditor) are decided in accounts/permissions.py; this module adds what they mean on an asset.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet, TextChoices

from accounts.permissions import is_admin, is_read_only_account, reads_everything
from accounts.permissions import require_admin as require_admin  # re-exported for the services
from core.compiled import CompiledQuery
from core.exceptions import Forbidden


class Role(TextChoices):
    VIEW = "view", "View"
    CONTRIBUTE = "contribute", "Contribute"
    REQUEST_PROMOTION = "request_promotion", "Request promotion"
    REVIEW = "review", "Review"
    MANAGE = "manage", "Manage"


CODENAMES = {
    Role.VIEW: "view_asset",
    Role.CONTRIBUTE: "contribute_asset",
    Role.REQUEST_PROMOTION: "request_promotion_asset",
    Role.REVIEW: "review_asset",
    Role.MANAGE: "manage_asset",
}
ROLE_OF_CODENAME = {codename: role for role, codename in CODENAMES.items()}
IMPLIED = {
    Role.VIEW: {Role.VIEW},
    Role.CONTRIBUTE: {Role.VIEW, Role.CONTRIBUTE},
    Role.REQUEST_PROMOTION: {Role.VIEW, Role.REQUEST_PROMOTION},
    Role.REVIEW: {Role.VIEW, Role.REVIEW},
    Role.MANAGE: {Role.VIEW, Role.CONTRIBUTE, Role.REQUEST_PROMOTION, Role.MANAGE},
}
ADMIN_ROLES = {Role.VIEW, Role.CONTRIBUTE, Role.REQUEST_PROMOTION, Role.MANAGE}


def _user_grants(user):
    from registry.models import AssetUserObjectPermission

    return AssetUserObjectPermission.objects.filter(user=user)


def _team_grants(user):
    from registry.models import AssetGroupObjectPermission

    return AssetGroupObjectPermission.objects.filter(group__user=user)


def visible_asset_ids(user) -> QuerySet | None:
    """A subquery of the ids of the assets user may see, or None when user sees every asset."""
    if reads_everything(user):
        return None
    return (
        _user_grants(user).values("content_object_id").union(_team_grants(user).values("content_object_id"))
    )


def restrict(queryset: QuerySet, user, field: str = "pk") -> QuerySet:
    """Filter a queryset of assets (or of rows under an asset, via `field`) to what user may see.

    Filters with subqueries in the same SQL statement; never loads ids into Python.
    """
    if user is None or not user.is_authenticated:
        return queryset.none()
    if reads_everything(user):
        return queryset
    return queryset.filter(
        Q(**{f"{field}__in": _user_grants(user).values("content_object_id")})
        | Q(**{f"{field}__in": _team_grants(user).values("content_object_id")})
    )


def restrict_few(queryset: QuerySet, user, field: str = "pk") -> QuerySet:
    """restrict for a query of one row or a few, found by key (an asset by kind and name, a request by id):
    the same rule, asked of each row's grants (EXISTS, through the grants' asset index) instead of as a
    list of every asset user may see, which the database would hash first. For a person whose teams hold
    thousands of grants that is 0.2 ms instead of 4-7 ms (bench/README.md); for long lists restrict's form
    is the quicker one."""
    if user is None or not user.is_authenticated:
        return queryset.none()
    if reads_everything(user):
        return queryset
    return queryset.filter(
        Exists(_user_grants(user).filter(content_object_id=OuterRef(field)))
        | Exists(_team_grants(user).filter(content_object_id=OuterRef(field)))
    )


def _granted_query(*, user_id: int, asset_id: int):
    from registry.models import AssetGroupObjectPermission, AssetUserObjectPermission

    direct = AssetUserObjectPermission.objects.filter(user_id=user_id, content_object_id=asset_id)
    teams = AssetGroupObjectPermission.objects.filter(group__user=user_id, content_object_id=asset_id)
    return direct.values_list("permission__codename").union(teams.values_list("permission__codename"))


_GRANTED = CompiledQuery(_granted_query)


def granted_roles(user, asset) -> set[Role]:
    """The roles granted on asset to user directly or through a team: one query, compiled once."""
    rows = _GRANTED.rows("granted", {}, user_id=user.pk, asset_id=asset.pk)
    return roles_of_codenames(user, [codename for (codename,) in rows])


def roles_of_codenames(user, codenames) -> set[Role]:
    """The roles that these granted permission codenames give user.

    An auditor's grants count as view only, however they got into the tables (through a team, or written
    around grant_add): an auditor holds no write role and never reviews.
    """
    roles = {ROLE_OF_CODENAME[codename] for codename in codenames if codename in ROLE_OF_CODENAME}
    return roles & {Role.VIEW} if is_read_only_account(user) else roles


_USER_STAND_IN = -(10**15) - 1  # no account has this id: where it appears, the caller's id goes


def granted_codenames_sql(*, user_id: int) -> tuple[str, list]:
    """SQL of the permission codenames granted to a user on the asset row `registry_asset` of the enclosing
    query (directly or through a team), from the same ORM query as granted_roles, and its parameters.
    Compiled once per process (the text does not depend on the user)."""
    global _granted_sql
    if _granted_sql is None:
        from django.db.models.expressions import RawSQL

        from registry.models import AssetGroupObjectPermission, AssetUserObjectPermission

        here = RawSQL('"registry_asset"."id"', [])
        direct = AssetUserObjectPermission.objects.filter(user_id=_USER_STAND_IN, content_object_id=here)
        teams = AssetGroupObjectPermission.objects.filter(group__user=_USER_STAND_IN, content_object_id=here)
        query = direct.values_list("permission__codename").union(teams.values_list("permission__codename"))
        _granted_sql = query.query.sql_with_params()
    sql, params = _granted_sql
    return sql, [user_id if param == _USER_STAND_IN else param for param in params]


_granted_sql = None


def role_rule(user, role: Role) -> tuple[bool, list[str]]:
    """How `role in effective_roles(user, asset)` is decided for any asset, for a check inside SQL:
    (whether user holds role whatever the grants, the codenames of which any grant gives it)."""
    always = role in global_asset_roles(user)
    codenames = sorted(
        CODENAMES[g] for g in Role if role in IMPLIED[g] and roles_of_codenames(user, [CODENAMES[g]])
    )
    return always, codenames


def global_asset_roles(user) -> set[Role]:
    """The roles user holds on every asset, from the global roles."""
    roles: set[Role] = set()
    if is_admin(user):
        roles |= ADMIN_ROLES
    if reads_everything(user):
        roles.add(Role.VIEW)
    return roles


def effective_roles(user, asset, codenames=None) -> set[Role]:
    """What user may do on asset: granted roles with their implications, plus global roles
    (`codenames`: the granted permission codenames when the caller read them already)."""
    roles: set[Role] = set()
    granted = granted_roles(user, asset) if codenames is None else roles_of_codenames(user, codenames)
    for role in granted:
        roles |= IMPLIED[role]
    return roles | global_asset_roles(user)


def require(actor, asset, role: Role) -> None:
    """Raise Forbidden unless actor may act as role on asset. The system actor (None) may do anything."""
    if actor is None:
        return
    if role not in effective_roles(actor, asset):
        raise Forbidden(f"You need the '{role}' role on {asset} to do this.", type="permission-denied")


def can_create_assets(actor) -> bool:
    """Admins, and active accounts holding `registry.add_asset` themselves; never auditors.

    Only the account's own permission counts, the one accounts.services.user_update sets with an audit event
    (`can_create_assets`); a team's (group) permission grants nothing, since no event records it.
    """
    if actor is None or is_admin(actor):
        return True
    return (
        actor.is_active
        and not is_read_only_account(actor)
        and actor.user_permissions.filter(content_type__app_label="registry", codename="add_asset").exists()
    )
