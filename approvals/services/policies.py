"""Promotion policies: what promotion into a stage takes, for one asset, one kind, or all assets."""

from __future__ import annotations

from django.db import transaction

from approvals import policy as rules
from approvals.models import Policy
from audit.models import Action
from audit.services import audit_record
from core.exceptions import Conflict, InvalidInput
from core.source import Source
from registry.models import Asset, AssetKind, Stage
from registry.permissions import Role, require, require_admin

MAX_EXPIRY_HOURS = 30 * 24
POLICY_FIELDS = (
    "required_approvals",
    "reviewer_teams",
    "allow_author_approval",
    "gates",
    "expiry_hours",
    "apply_on_approval",
)


def _require_policy_editor(actor, asset: Asset | None) -> None:
    if asset is not None:
        require(actor, asset, Role.MANAGE)
    else:
        require_admin(actor)


def _clean_policy_fields(fields: dict) -> dict:
    if "required_approvals" in fields and not 1 <= fields["required_approvals"] <= 20:
        raise InvalidInput.field("required_approvals", "must be between 1 and 20")
    if "expiry_hours" in fields and not 1 <= fields["expiry_hours"] <= MAX_EXPIRY_HOURS:
        raise InvalidInput.field("expiry_hours", f"must be between 1 and {MAX_EXPIRY_HOURS}")
    if "gates" in fields:
        try:
            fields["gates"] = rules.validate_gates(fields["gates"])
        except rules.GateSpecError as exc:
            raise InvalidInput.field(exc.field, exc.message) from None
    return fields


def _policy_fields(policy: Policy) -> dict:
    return {
        "scope": policy.scope,
        "stage": policy.stage.name,
        "required_approvals": policy.required_approvals,
        "reviewer_teams": sorted(team.name for team in policy.reviewer_teams.all()),
        "allow_author_approval": policy.allow_author_approval,
        "gates": policy.gates,
        "expiry_hours": policy.expiry_hours,
        "apply_on_approval": policy.apply_on_approval,
    }


@transaction.atomic(durable=True)
def policy_create(
    *, actor, source: Source, stage: Stage, asset: Asset | None = None, kind: str = "", **fields
) -> Policy:
    """Define what promotion into stage takes, for one asset (its managers) or for many (admins)."""
    _require_policy_editor(actor, asset)
    if kind and kind not in AssetKind.values:
        raise InvalidInput.field("kind", f"must be one of {', '.join(AssetKind.values)}")
    kind = asset.kind if asset is not None else kind
    fields = _clean_policy_fields(fields)
    teams = fields.pop("reviewer_teams", [])
    duplicate = (
        Policy.objects.filter(stage=stage, asset=asset)
        if asset
        else Policy.objects.filter(stage=stage, asset__isnull=True, kind=kind)
    )
    if duplicate.exists():
        raise Conflict(
            "A policy for this scope and stage exists already; change it instead.", type="duplicate-policy"
        )
    policy = Policy.objects.create(stage=stage, asset=asset, kind=kind, created_by=actor, **fields)
    policy.reviewer_teams.set(teams)
    audit_record(
        actor=actor,
        action=Action.POLICY_CREATED,
        target=policy,
        source=source,
        asset_id=asset.pk if asset else None,
        changes={"after": _policy_fields(policy)},
    )
    return policy


@transaction.atomic(durable=True)
def policy_update(*, actor, source: Source, policy: Policy, **fields) -> Policy:
    """Change a policy. Pending requests keep the stricter of their snapshot and the new policy."""
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput.field(sorted(unknown)[0], "cannot be changed; make a new policy for another scope")
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    _require_policy_editor(actor, policy.asset)
    fields = _clean_policy_fields(fields)
    before = _policy_fields(policy)
    teams = fields.pop("reviewer_teams", None)
    for key, value in fields.items():
        setattr(policy, key, value)
    policy.save(update_fields=[*fields, "updated_at"])
    if teams is not None:
        policy.reviewer_teams.set(teams)
    after = _policy_fields(policy)
    changed = [key for key in after if before[key] != after[key]]
    audit_record(
        actor=actor,
        action=Action.POLICY_UPDATED,
        target=policy,
        source=source,
        asset_id=policy.asset_id,
        changes={"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}},
    )
    return policy


@transaction.atomic(durable=True)
def policy_delete(*, actor, source: Source, policy: Policy) -> None:
    """Remove a policy. A protected stage left without one cannot be promoted to."""
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    _require_policy_editor(actor, policy.asset)
    before = _policy_fields(policy)
    audit_record(
        actor=actor,
        action=Action.POLICY_DELETED,
        target=policy,
        source=source,
        asset_id=policy.asset_id,
        changes={"before": before},
    )
    policy.delete()
