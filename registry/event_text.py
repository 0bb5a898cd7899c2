"""One line about an audit event for someone who may not see every asset it names. Pure: no database.

An event is listed because its own asset is visible, but what it records can name other assets: a
registration lists its lineage parents, a lineage edge names its parent, an evaluation its dataset. Those
references are kept only when the reader may see them (the caller asks once for all of them, see
`registry.selectors.visible_asset_names`); otherwise the text says that something is there without naming it,
as the version page does.
"""

from __future__ import annotations

from collections.abc import Iterable

from audit.models import Action

HIDDEN_VERSION = "a version you may not see"
HIDDEN_DATASET = "a dataset you may not see"

# Events whose target names only the event's own asset (the asset the reader was allowed to see).
OWN_ASSET_ONLY = frozenset(
    {
        Action.ASSET_CREATED,
        Action.ASSET_UPDATED,
        Action.ASSET_ARCHIVED,
        Action.VERSION_UPDATED,
        Action.STAGE_SET,
        Action.GRANT_ADDED,
        Action.GRANT_REMOVED,
        Action.POLICY_CREATED,
        Action.POLICY_UPDATED,
        Action.POLICY_DELETED,
        Action.PROMOTION_REQUESTED,
        Action.PROMOTION_APPROVED,
        Action.PROMOTION_QUORUM_REACHED,
        Action.PROMOTION_REJECTED,
        Action.PROMOTION_CANCELLED,
        Action.PROMOTION_SUPERSEDED,
        Action.PROMOTION_EXPIRED,
        Action.PROMOTION_FAILED,
        Action.PROMOTION_APPLIED,
    }
)


def asset_name(reference: str) -> tuple[str, str]:
    """("model", "fraud") from "model/fraud@3" (names are slugs: no "/" or "@" inside)."""
    kind, _, rest = str(reference).partition("/")
    return kind, rest.rsplit("@", 1)[0]


def _after(event) -> dict:
    changes = event.changes if isinstance(event.changes, dict) else {}
    after = changes.get("after")
    return after if isinstance(after, dict) else {}


def _lineage(event) -> list[dict]:
    return [item for item in _after(event).get("lineage") or [] if isinstance(item, dict)]


def references(event) -> list[str]:
    """The versions of other assets that the event's text would name."""
    after = _after(event)
    if event.action == Action.LINEAGE_ADDED:
        return [after["parent"]] if after.get("parent") else []
    if event.action == Action.VERSION_CREATED:
        return [item["parent"] for item in _lineage(event) if item.get("parent")]
    if event.action == Action.EVALUATION_ADDED:
        return [after["dataset"]] if after.get("dataset") else []
    return []


def all_references(events: Iterable) -> set[str]:
    return {reference for event in events for reference in references(event)}


def summary(event, *, visible: set[tuple[str, str]]) -> str:
    """What the event is about, naming other assets only when (kind, name) is in visible."""

    def shown(reference: str, hidden: str = HIDDEN_VERSION) -> str:
        return reference if asset_name(reference) in visible else hidden

    after = _after(event)
    if event.action == Action.LINEAGE_ADDED:
        parent = shown(after["parent"]) if after.get("parent") else HIDDEN_VERSION
        return f"{after.get('child', '')} {after.get('relation', '')} {parent}".strip()
    if event.action == Action.VERSION_CREATED:
        parents = [
            f"{item.get('relation', '')} {shown(item['parent'])}"
            for item in _lineage(event)
            if item.get("parent")
        ]
        return f"{event.target_repr} ({', '.join(parents)})" if parents else event.target_repr
    if event.action == Action.EVALUATION_ADDED:
        dataset = after.get("dataset")
        return f"{event.target_repr} on {shown(dataset, HIDDEN_DATASET)}" if dataset else event.target_repr
    if event.action in OWN_ASSET_ONLY:
        return event.target_repr
    return ""
