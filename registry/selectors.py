"""Reads of the registry that are more than a plain get."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Value

from accounts.permissions import reads_everything
from audit.models import AuditEvent
from core.compiled import CompiledQuery
from core.exceptions import Forbidden, InvalidInput, NotFound
from registry.event_text import asset_name
from registry.models import (
    Asset,
    AssetGroupObjectPermission,
    AssetKind,
    AssetUserObjectPermission,
    AssetVersion,
    Evaluation,
    LineageEdge,
    Stage,
    StageHistory,
    StagePointer,
)
from registry.permissions import ROLE_OF_CODENAME, Role, effective_roles, restrict, restrict_few

MAX_LINEAGE_DEPTH = 100


def asset_list_for_user(*, user, kind: AssetKind) -> QuerySet[Asset]:
    """The assets of a kind that user may see (filtered in SQL with subqueries)."""
    return restrict(Asset.objects.filter(kind=kind), user).select_related("team", "created_by")


ASSET_COLUMNS = [field.attname for field in Asset._meta.concrete_fields]


def _asset_query(*, user, kind: str, name: str) -> QuerySet:
    assets = restrict_few(Asset.objects.filter(kind=kind, name=name), user)
    return assets.values_list(*ASSET_COLUMNS, "team__name", "created_by__username")


_ASSET = CompiledQuery(_asset_query)
User = get_user_model()


def asset_get_for_user(*, user, kind: AssetKind, name: str) -> Asset:
    """The asset, if user may see it; otherwise the same NotFound as for an asset that does not exist.

    Every request under an asset starts here, so the query is compiled once (see core.compiled); the
    owning team and the creator come with it, by name.
    """
    if not user.is_authenticated:
        raise NotFound("Not found.")
    shape = "all" if reads_everything(user) else "granted"
    row = _ASSET.first(shape, {"user": user}, kind=str(kind), name=name)
    if row is None:
        raise NotFound("Not found.")
    columns = len(ASSET_COLUMNS)
    asset = Asset.from_db("default", ASSET_COLUMNS, row[:columns])
    team_name, creator_name = row[columns:]
    asset.team = (
        Group.from_db("default", ["id", "name"], [asset.team_id, team_name]) if asset.team_id else None
    )
    if asset.created_by_id:
        asset.created_by = User.from_db("default", ["id", "username"], [asset.created_by_id, creator_name])
    return asset


def version_list(*, asset: Asset) -> QuerySet[AssetVersion]:
    return AssetVersion.objects.filter(asset=asset).select_related("asset", "created_by")


def _version_query(*, asset_id, number):
    # The number as an expression: an integer lookup checks its value against the column's range when it is
    # compiled, and the SQL compiled once must not depend on the value (version_find checks the range).
    versions = AssetVersion.objects.filter(asset_id=asset_id, number=Value(number))
    return versions.select_related("asset", "created_by")


_VERSION = CompiledQuery(_version_query)


def version_find(*, asset: Asset, number: int) -> AssetVersion | None:
    """The asset's version by number (a whole number; with its asset and author), or None, as version_get
    reads it, with the SQL compiled once (every promotion request names one)."""
    low, high = connection.ops.integer_field_range(AssetVersion._meta.get_field("number").get_internal_type())
    if (low is not None and number < low) or (high is not None and number > high):
        return None  # no such version (what the ORM's lookup answers without asking)
    found = _VERSION.objects("version", {}, limit=1, asset_id=asset.pk, number=number)
    return found[0] if found else None


def version_get(*, asset: Asset, number: int) -> AssetVersion:
    version = version_list(asset=asset).filter(number=number).first()
    if version is None:
        raise NotFound("Not found.")
    return version


def evaluation_list(*, version: AssetVersion) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(version=version).select_related("created_by", "dataset_version__asset")


def stage_get(*, name: str) -> Stage:
    stage = Stage.objects.filter(name=name).first()
    if stage is None:
        raise NotFound("Not found.")
    return stage


_STAGE = CompiledQuery(lambda *, name: Stage.objects.filter(name=name))


def stage_get_or_invalid(*, name: str, field: str = "stage") -> Stage:
    """The stage named in a request body: an unknown one is bad input (400), not a missing page. (Every
    promotion request names one: the SQL is compiled once.)"""
    found = _STAGE.objects("stage", {}, limit=1, name=name)
    stage = found[0] if found else None
    if stage is None:
        names = ", ".join(Stage.objects.values_list("name", flat=True))
        raise InvalidInput.field(field, f"no stage named {name!r}; stages: {names}")
    return stage


def stage_pointer_list(*, asset: Asset) -> list[dict]:
    """Every stage in order, with the version of this asset in it (or None)."""
    pointers = {
        pointer.stage_id: pointer
        for pointer in StagePointer.objects.filter(asset=asset).select_related("version", "updated_by")
    }
    return [{"stage": stage, "pointer": pointers.get(stage.pk)} for stage in Stage.objects.all()]


RESOLVE_COLUMNS = (
    "version_id",
    "updated_at",
    "version__number",
    "version__digest",
    "version__uri",
    "stage__name",
    "stage__protected",
    "updated_by__username",
)


def _resolve_query(*, user, kind: str, name: str, stage: str) -> QuerySet:
    pointers = StagePointer.objects.filter(asset__kind=kind, asset__name=name, stage__name=stage)
    return restrict_few(pointers, user, field="asset").values_list(*RESOLVE_COLUMNS)


_RESOLVE = CompiledQuery(_resolve_query)


def stage_pointer_resolve_for_user(*, user, kind: AssetKind, name: str, stage: str) -> dict | None:
    """What is in <stage> for <kind>/<name>, if user may see it: one indexed query, visibility included.

    The hottest read of the registry: its SQL is compiled once per shape (see core.compiled) and it returns
    only the columns of the answer.
    """
    if not user.is_authenticated:
        return None
    shape = "all" if reads_everything(user) else "granted"
    row = _RESOLVE.first(shape, {"user": user}, kind=str(kind), name=name, stage=stage)
    return dict(zip(RESOLVE_COLUMNS, row, strict=True)) if row else None


# The walk from a version to its edges, `near` being the end it starts from and `far` the end it goes on to:
# upstream from child to parent, downstream from parent to child.
_WALK_SQL = """
WITH RECURSIVE walk(edge_id, node_id, depth) AS (
    SELECT e.id, e.{far}, 1 FROM registry_lineageedge e WHERE e.{near} = %s
    UNION
    SELECT e.id, e.{far}, w.depth + 1
    FROM registry_lineageedge e JOIN walk w ON e.{near} = w.node_id
    WHERE w.depth < %s
)
SELECT edge_id, MIN(depth) FROM walk GROUP BY edge_id
"""
_WALK = {
    "upstream": _WALK_SQL.format(near="child_id", far="parent_id"),
    "downstream": _WALK_SQL.format(near="parent_id", far="child_id"),
}
_REACHES_SQL = """
WITH RECURSIVE down(id) AS (
    SELECT CAST(%s AS BIGINT)
    UNION
    SELECT e.child_id FROM registry_lineageedge e JOIN down d ON e.parent_id = d.id
)
SELECT 1 FROM down WHERE id = %s LIMIT 1
"""


def _visible_edges_query(*, user, ids: list[int]) -> QuerySet[LineageEdge]:
    edges = LineageEdge.objects.filter(pk__in=ids)
    edges = restrict_few(restrict_few(edges, user, field="parent__asset"), user, field="child__asset")
    return edges.select_related("parent__asset", "child__asset")


_VISIBLE_EDGES = CompiledQuery(_visible_edges_query)  # compiled once per shape and number of edges


def lineage_for_user(
    *, user, version: AssetVersion, direction: str, depth: int
) -> list[tuple[LineageEdge, int]]:
    """Edges reachable from version, walking up (parents) or down (children) at most depth hops.

    Two queries whatever the depth (one recursive walk for the edge ids, one fetch of the edges with both
    ends joined) and, for anyone who does not see every asset, their own edges are narrowed in that same
    fetch: the walk only goes on through versions the user may see, so nothing beyond a hidden version shows.
    """
    sql = _WALK["upstream" if direction == "upstream" else "downstream"]
    with connection.cursor() as cursor:
        cursor.execute(sql, [version.pk, depth])
        depths = dict(cursor.fetchall())
    if not depths:
        return []
    shape = "all" if reads_everything(user) else "granted"
    edges = _VISIBLE_EDGES.objects(shape, {"user": user}, ids=list(depths))
    # Walk again over the visible edges only, from the version itself, so that depths count visible hops.
    near, far = ("child_id", "parent_id") if direction == "upstream" else ("parent_id", "child_id")
    by_near: dict[int, list[LineageEdge]] = {}
    for edge in edges:
        by_near.setdefault(getattr(edge, near), []).append(edge)
    reached, frontier, hops = [], [version.pk], 0
    seen_nodes, seen_edges = {version.pk}, set()
    while frontier and hops < depth:
        hops += 1
        following = []
        for node in frontier:
            for edge in by_near.get(node, []):
                if edge.pk in seen_edges:
                    continue
                seen_edges.add(edge.pk)
                reached.append((edge, hops))
                if getattr(edge, far) not in seen_nodes:
                    seen_nodes.add(getattr(edge, far))
                    following.append(getattr(edge, far))
        frontier = following
    return sorted(reached, key=lambda item: (item[1], item[0].pk))


def lineage_reaches(*, start: AssetVersion, target: AssetVersion) -> bool:
    """True when target is start or one of its descendants."""
    with connection.cursor() as cursor:
        cursor.execute(_REACHES_SQL, [start.pk, target.pk])
        return cursor.fetchone() is not None


# Reads for the registry's pages ----------------------------------------------------------------------


def asset_search_for_user(*, user, kind: AssetKind | None = None) -> QuerySet[Asset]:
    """Assets of every kind (or of one) that user may see, with their team and current stage pointers.

    Three queries for a page whatever its length: the page of assets (team joined), their stage
    pointers with the versions they point at (one prefetch), and the count for the paginator.
    """
    assets = restrict(Asset.objects.all(), user)
    if kind:
        assets = assets.filter(kind=kind)
    pointers = StagePointer.objects.select_related("version").only("asset", "stage", "version__number")
    return (
        assets.select_related("team")
        .prefetch_related(Prefetch("stage_pointers", queryset=pointers))
        .order_by("kind", "name")
    )


def team_list_for_user(*, user) -> QuerySet[Group]:
    """The teams that own at least one asset user may see (for the list page's team filter)."""
    owned = restrict(Asset.objects.filter(team__isnull=False), user).values("team_id")
    return Group.objects.filter(pk__in=owned).order_by("name")


def stage_history_list(*, asset: Asset) -> QuerySet[StageHistory]:
    """Every stage move of an asset, newest first, with what a history table shows joined in."""
    return (
        StageHistory.objects.filter(asset=asset)
        .select_related("stage", "version", "previous_version", "actor")
        .order_by("-id")
    )


def version_stage_moves(*, version: AssetVersion) -> QuerySet[StageHistory]:
    """The stage moves that put this version into a stage or took it out, newest first."""
    return stage_history_list(asset=version.asset).filter(Q(version=version) | Q(previous_version=version))


def version_stages(*, version: AssetVersion) -> QuerySet[Stage]:
    """The stages this version is in now."""
    return Stage.objects.filter(
        pk__in=StagePointer.objects.filter(asset_id=version.asset_id, version=version).values("stage_id")
    )


def version_audit_events(*, version: AssetVersion) -> QuerySet[AuditEvent]:
    """The audit events whose target is this version (registration, edits), newest first.

    Only the columns a history table shows: the body, hashes and request context stay in the log.
    """
    return (
        AuditEvent.objects.filter(target_kind=AssetVersion._meta.label_lower, target_id=str(version.pk))
        .only("seq", "occurred_at", "actor_repr", "actor_kind", "action", "source", "changes")
        .order_by("-seq")
    )


def visible_asset_names(*, user, references: set[str]) -> set[tuple[str, str]]:
    """The (kind, name) of the assets named by these "kind/name@number" references that user may see.

    One query, and none when there is nothing to ask or user sees every asset.
    """
    named = {asset_name(reference) for reference in references}
    if not named or user.is_registry_admin or user.is_auditor:
        return named
    kinds, names = zip(*sorted(named), strict=True)
    return set(_VISIBLE_NAMES.rows("granted", {"user": user}, kinds=list(kinds), names=list(names)))


def _visible_names_query(*, user, kinds: list[str], names: list[str]) -> QuerySet:
    by_key = Q()
    for kind, name in zip(kinds, names, strict=True):
        by_key |= Q(kind=kind, name=name)
    return restrict_few(Asset.objects.filter(by_key), user).values_list("kind", "name")


_VISIBLE_NAMES = CompiledQuery(_visible_names_query)  # once per number of names (core.compiled)


def evaluation_list_for_user(*, user, version: AssetVersion) -> QuerySet[Evaluation]:
    """The evaluations of a version, newest first; `dataset_visible` says whether user may see the dataset.

    The version is visible (the caller fetched it for user), but the dataset an evaluation names belongs
    to another asset that may not be: the page names it only when it is visible.
    """
    visible = restrict_few(Asset.objects.filter(pk=OuterRef("dataset_version__asset_id")), user)
    return evaluation_list(version=version).annotate(dataset_visible=Exists(visible)).order_by("-id")


def version_pair(*, asset: Asset, numbers: list[int]) -> dict[int, AssetVersion]:
    """The versions of asset with these numbers, by number, in one query (missing ones are absent)."""
    return {version.number: version for version in version_list(asset=asset).filter(number__in=numbers)}


def grant_list_for_user(*, user, asset: Asset) -> list[dict]:
    """Who holds which role on asset: for its managers, admins and auditors."""
    if not (reads_everything(user) or Role.MANAGE in effective_roles(user, asset)):
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


def version_metric_series(*, asset: Asset, limit: int) -> list[tuple[int, dict]]:
    """(number, metrics) of the asset's latest `limit` versions, oldest first, for the metric chart (one
    query, only those two columns)."""
    rows = AssetVersion.objects.filter(asset=asset).order_by("-number").values_list("number", "metrics")
    return list(reversed(rows[:limit]))


def team_names() -> list[str]:
    """Every team's name, for the owning-team choice of the asset edit form (one query)."""
    return list(Group.objects.order_by("name").values_list("name", flat=True))


def team_get_or_invalid(*, name: str, field: str = "team") -> Group:
    """The team named in a form or body: an unknown one is bad input naming the field."""
    team = Group.objects.filter(name=name).first()
    if team is None:
        raise InvalidInput.field(field, f"no team named {name!r}")
    return team


def unprotected_stage_names() -> list[str]:
    """The stages a contributor may set directly (protected ones need a promotion), in stage order."""
    return list(Stage.objects.filter(protected=False).values_list("name", flat=True))
