"""Reads of the registry that are more than a plain get."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from core.exceptions import InvalidInput, NotFound
from registry.models import (
    Asset,
    AssetKind,
    AssetVersion,
    Evaluation,
    LineageEdge,
    Stage,
    StagePointer,
)
from registry.permissions import restrict

MAX_LINEAGE_DEPTH = 100


def asset_list_for_user(*, user, kind: AssetKind) -> QuerySet[Asset]:
    """The assets of a kind that user may see (filtered in SQL with subqueries)."""
    return restrict(Asset.objects.filter(kind=kind), user).select_related("team", "created_by")


def asset_get_for_user(*, user, kind: AssetKind, name: str) -> Asset:
    """The asset, if user may see it; otherwise the same NotFound as for an asset that does not exist."""
    asset = asset_list_for_user(user=user, kind=kind).filter(name=name).first()
    if asset is None:
        raise NotFound("Not found.")
    return asset


def version_list(*, asset: Asset) -> QuerySet[AssetVersion]:
    return AssetVersion.objects.filter(asset=asset).select_related("asset", "created_by")


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


def stage_get_or_invalid(*, name: str, field: str = "stage") -> Stage:
    """The stage named in a request body: an unknown one is bad input (400), not a missing page."""
    stage = Stage.objects.filter(name=name).first()
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


def stage_pointer_resolve_for_user(*, user, kind: AssetKind, name: str, stage: str) -> StagePointer | None:
    """What is in <stage> for <kind>/<name>, if user may see it: one indexed query, visibility included."""
    pointers = StagePointer.objects.filter(asset__kind=kind, asset__name=name, stage__name=stage)
    return restrict(pointers, user, field="asset").select_related("version", "stage", "updated_by").first()


_UPSTREAM_SQL = """
WITH RECURSIVE walk(edge_id, node_id, depth) AS (
    SELECT e.id, e.parent_id, 1 FROM registry_lineageedge e WHERE e.child_id = %s
    UNION
    SELECT e.id, e.parent_id, w.depth + 1
    FROM registry_lineageedge e JOIN walk w ON e.child_id = w.node_id
    WHERE w.depth < %s
)
SELECT edge_id, MIN(depth) FROM walk GROUP BY edge_id
"""
_DOWNSTREAM_SQL = """
WITH RECURSIVE walk(edge_id, node_id, depth) AS (
    SELECT e.id, e.child_id, 1 FROM registry_lineageedge e WHERE e.parent_id = %s
    UNION
    SELECT e.id, e.child_id, w.depth + 1
    FROM registry_lineageedge e JOIN walk w ON e.parent_id = w.node_id
    WHERE w.depth < %s
)
SELECT edge_id, MIN(depth) FROM walk GROUP BY edge_id
"""
_REACHES_SQL = """
WITH RECURSIVE down(id) AS (
    SELECT CAST(%s AS BIGINT)
    UNION
    SELECT e.child_id FROM registry_lineageedge e JOIN down d ON e.parent_id = d.id
)
SELECT 1 FROM down WHERE id = %s LIMIT 1
"""


def lineage_for_user(
    *, user, version: AssetVersion, direction: str, depth: int
) -> list[tuple[LineageEdge, int]]:
    """Edges reachable from version, walking up (parents) or down (children) at most depth hops.

    Two queries whatever the depth: one recursive walk for the edge ids, one fetch of the edges.
    Edges that touch an asset user may not see are left out.
    """
    sql = _UPSTREAM_SQL if direction == "upstream" else _DOWNSTREAM_SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, [version.pk, depth])
        depths = dict(cursor.fetchall())
    if not depths:
        return []
    edges = LineageEdge.objects.filter(pk__in=depths)
    edges = restrict(restrict(edges, user, field="parent__asset"), user, field="child__asset")
    edges = edges.select_related("parent__asset", "child__asset")
    return sorted(((edge, depths[edge.pk]) for edge in edges), key=lambda item: (item[1], item[0].pk))


def lineage_reaches(*, start: AssetVersion, target: AssetVersion) -> bool:
    """True when target is start or one of its descendants."""
    with connection.cursor() as cursor:
        cursor.execute(_REACHES_SQL, [start.pk, target.pk])
        return cursor.fetchone() is not None
