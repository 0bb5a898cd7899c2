"""Promotion requests: request, approve, reject, cancel, apply, expire. Every transition runs in one
transaction with its audit event, and takes its locks in the order asset → promotion request → audit log."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from approvals import policy as rules
from approvals.models import OPEN_STATUSES, Decision, Policy, PromotionRequest, Review, Status
from approvals.requirements import (
    combined_requirements,
    counted_approvals,
    gate_results,
    in_hand,
    policies_for,
    requirements_for,
    review_refusal,
    version_facts,
)
from approvals.services.idempotency import IdempotencyClaim, claim_key, keep_answer
from approvals.tasks import outbox_callback
from audit.models import Action
from audit.services import audit_record
from core import netguard
from core.compiled import CompiledQuery
from core.exceptions import Conflict, Forbidden, InvalidInput, Unprocessable
from core.source import Source
from registry.models import Asset, AssetVersion, Stage, StagePointer
from registry.permissions import Role, effective_roles, granted_codenames_sql, require
from registry.services import stage_move


def _transition(promotion: PromotionRequest, target: Status, reason: str = "", **fields) -> None:
    if not rules.can_transition(promotion.status, target):
        raise _not_pending(promotion)
    promotion.status, promotion.status_reason = target, reason
    promotion.revision += 1
    for key, value in fields.items():
        setattr(promotion, key, value)
    promotion.save(update_fields=["status", "status_reason", "revision", "updated_at", *fields])


def _not_pending(promotion: PromotionRequest) -> Conflict:
    return Conflict(
        f"Promotion #{promotion.pk} is {promotion.status}; it can no longer change this way.",
        type="request-not-pending",
        extra={"current_state": promotion.status},
    )


def _open_requests(*, asset_id, stage_id):
    """The open requests for asset → stage, locked, with what their audit events name (the version, its
    asset and the stage, read without locking them)."""
    return (
        PromotionRequest.objects.select_for_update(of=("self",))
        .select_related("version__asset", "stage")
        .filter(asset_id=asset_id, stage_id=stage_id, status__in=OPEN_STATUSES)
        .order_by("pk")
    )


def _asset_locked(*, asset_id):
    return Asset.objects.select_for_update().filter(pk=asset_id)


def _asset_locked_with_grants(*, asset_id, user_id):
    """The asset's row locked, with the codenames granted on it to the user (PostgreSQL: an ARRAY)."""
    sql, params = granted_codenames_sql(user_id=user_id)
    granted = RawSQL(f"ARRAY({sql})", params, output_field=CharField())
    return _asset_locked(asset_id=asset_id).annotate(granted=granted)


def _pointer(*, asset_id, stage_id):
    return StagePointer.objects.filter(asset_id=asset_id, stage_id=stage_id).select_related("version")


# A request's reads, compiled once per process (core.compiled): building the SQL cost more than running it.
_OPEN_REQUESTS = CompiledQuery(_open_requests)
_ASSET_LOCKED = CompiledQuery(_asset_locked)
_ASSET_LOCKED_WITH_GRANTS = CompiledQuery(_asset_locked_with_grants)


def _lock_asset_requiring(actor, asset: Asset, role: Role) -> Asset:
    """require(actor, asset, role), then the asset's row locked; on PostgreSQL both in one statement (the
    answers are the same: the lock a refused request took goes with its rollback)."""
    if actor is None or connection.vendor != "postgresql":
        require(actor, asset, role)
        (locked,) = _ASSET_LOCKED.objects("lock", {}, limit=1, asset_id=asset.pk)
        return locked
    (locked,) = _ASSET_LOCKED_WITH_GRANTS.objects("lock", {}, limit=1, asset_id=asset.pk, user_id=actor.pk)
    if role not in effective_roles(actor, locked, codenames=locked.granted):
        raise Forbidden(f"You need the '{role}' role on {asset} to do this.", type="permission-denied")
    return locked


_POINTER = CompiledQuery(_pointer)


def _no_reviews_yet(promotion: PromotionRequest) -> None:
    """A request just made has no reviews: its representation (the answer kept for its Idempotency-Key) reads
    them from here, as from a prefetch, instead of asking."""
    reviews = promotion.reviews.all()
    reviews._result_cache, reviews._prefetch_done = [], True
    promotion._prefetched_objects_cache = {"reviews": reviews}


def _lock(promotion_id: int) -> PromotionRequest:
    """Lock the request's asset, then the request. Every transaction takes its locks in the order
    asset → promotion request → audit log, so that none can wait on another in a cycle."""
    asset_id = PromotionRequest.objects.values_list("asset_id", flat=True).get(pk=promotion_id)
    list(Asset.objects.select_for_update().filter(pk=asset_id))
    return (
        PromotionRequest.objects.select_for_update(of=("self",))
        .select_related("asset", "version__asset", "stage", "requested_by", "base_version")
        .get(pk=promotion_id)
    )


class _Expired(Conflict):
    """A decision found the request's time run out (the expiry is then recorded: _records_expiry)."""


def _refuse_if_closed(promotion: PromotionRequest, *, allowed=(Status.PENDING,)) -> None:
    if promotion.status in allowed and rules.is_due(promotion.status, promotion.expires_at, timezone.now()):
        # Expired by the clock, not recorded yet: refused as expired, and recorded after this rollback.
        raise _Expired(
            f"Promotion #{promotion.pk} is expired; it can no longer change this way.",
            type="request-not-pending",
            extra={"current_state": Status.EXPIRED},
        )
    if promotion.status not in allowed:
        raise _not_pending(promotion)


def _records_expiry(decision):
    """A decision on a request whose time has run out is refused (409, current_state expired) and its
    transaction rolled back; the expiry is then recorded in a transaction of its own, with its audit event
    and callback. Reads only report an expiry; this, and the periodic task, write it."""

    @functools.wraps(decision)
    def deciding(*, promotion_id: int, source: Source, **arguments):
        try:
            return decision(promotion_id=promotion_id, source=source, **arguments)
        except _Expired:
            promotion_expire_if_due(promotion_id=promotion_id, source=source)
            raise

    return deciding


def _notify(promotion: PromotionRequest) -> None:
    """A final state of a request with a callback_url: its callback, written to the outbox in this
    transaction (with the decision and its audit event), sent once it commits."""
    if promotion.callback_url and promotion.status in rules.FINAL:
        outbox_callback(promotion)


def _checked_first(check: Callable[..., None]):
    """Run check(**arguments) before the service's durable transaction begins, so that nothing is locked
    while it runs. The service keeps its name, signature and `__wrapped__` (how services are recognised)."""

    def decorate(service):
        @functools.wraps(service)
        def checked(**arguments):
            check(**arguments)
            return service(**arguments)

        return checked

    return decorate


def _check_callback(*, callback_url: str = "", **_) -> None:
    """400 naming callback_url unless the registry may POST there (core/netguard.py, the allow lists).

    Its host is looked up here, before the transaction: no lock may be held while a resolver chosen by the
    URL's owner takes its time.
    """
    if not callback_url:
        return
    try:
        target = netguard.parse_url(callback_url, allowed_hosts=settings.CALLBACK_ALLOWED_HOSTS)
        if not target.trusted:  # an allow-listed host is looked up only when a callback is sent
            netguard.resolve(
                target,
                allowed_networks=netguard.parse_networks(settings.CALLBACK_ALLOWED_NETWORKS),
                timeout=settings.WEBHOOK_TIMEOUT,
            )
    except netguard.Refused as exc:
        raise InvalidInput.field("callback_url", str(exc)) from None


@_checked_first(_check_callback)
@transaction.atomic(durable=True)
def promotion_request(
    *,
    actor,
    source: Source,
    asset: Asset,
    version: AssetVersion,
    stage: Stage,
    justification: str,
    rollback: bool = False,
    ci: dict | None = None,
    callback_url: str = "",
    idempotency: IdempotencyClaim | None = None,
) -> PromotionRequest:
    """Ask for version to go to stage. Gates are checked now (422 listing every failure, nothing created).

    callback_url is checked before the transaction begins (_check_callback); idempotency, when given, is
    the caller's key, taken first in the transaction and answered with the request made.
    """
    record = None
    if idempotency is not None:
        # Inserted first: a concurrent replay of the same key waits on this row, then finds it.
        record = claim_key(account=actor, claim=idempotency)
    # One request decision per asset at a time (assets are archived, never deleted: the row is there).
    locked = _lock_asset_requiring(actor, asset, Role.REQUEST_PROMOTION)
    if locked.is_archived:
        raise Conflict(f"{asset} is archived.", type="asset-archived")
    if version.asset_id != asset.pk:
        raise InvalidInput.field("version", f"is not a version of {asset}")
    if not justification.strip():
        raise InvalidInput.field("justification", "is required")
    policies = policies_for(asset, stage)
    policy = policies[0] if policies else None
    if policy is None:
        raise Conflict(
            f"No policy governs promotion of {asset} into {stage.name}; a manager must define one.",
            type="no-policy",
        )
    pointers = _POINTER.objects("pointer", {}, limit=1, asset_id=asset.pk, stage_id=stage.pk)
    base = pointers[0].version if pointers else None
    if base is not None and base.pk == version.pk:
        raise Conflict(
            f"{version} is already in {stage.name}.",
            type="already-in-stage",
            extra={"current_version": base.number},
        )
    if base is not None and version.number < base.number and not rollback:
        raise Unprocessable(
            f"{version} is older than {base}, which is in {stage.name}; send rollback: true to roll back.",
            type="rollback-required",
            extra={"current_version": base.number},
        )
    snapshot = combined_requirements(policies)
    # Lock the open requests this one will supersede now, before the first audit event takes the log's lock.
    older = _OPEN_REQUESTS.objects("open", {}, asset_id=asset.pk, stage_id=stage.pk)
    failed = [
        result for result in rules.evaluate(snapshot["gates"], version_facts(version)) if not result.passed
    ]
    if failed:
        raise Unprocessable(
            "Gates failed: " + "; ".join(result.message for result in failed),
            type="gate-failed",
            extra={"failed_gates": [result.as_dict() for result in failed]},
        )
    now = timezone.now()
    promotion = PromotionRequest.objects.create(
        asset=asset,
        version=version,
        stage=stage,
        requested_by=actor,
        justification=justification.strip(),
        rollback=rollback,
        ci=ci or {},
        callback_url=callback_url,
        policy=policy,
        policy_snapshot=snapshot,
        base_version=base,
        expires_at=now + dt.timedelta(hours=policy.expiry_hours),
    )
    _no_reviews_yet(promotion)
    with in_hand(promotion, policies):  # the e-mails to its reviewers need what was read above
        audit_record(
            actor=actor,
            action=Action.PROMOTION_REQUESTED,
            target=promotion,
            source=source,
            asset_id=asset.pk,
            changes={
                "version": version.number,
                "stage": stage.name,
                "base_version": base.number if base else None,
                "justification": promotion.justification,
                "rollback": rollback,
                "ci": promotion.ci,
                "required_approvals": snapshot["required_approvals"],
            },
        )
    # Reviewers always look at the latest candidate: older open requests for this stage are superseded (one
    # whose time has run out already reads as expired, and is recorded so).
    for previous in older:
        if rules.is_due(previous.status, previous.expires_at, now):
            _expire(previous, source)
            continue
        _transition(
            previous, Status.SUPERSEDED, f"superseded by promotion #{promotion.pk}", superseded_by=promotion
        )
        audit_record(
            actor=actor,
            action=Action.PROMOTION_SUPERSEDED,
            target=previous,
            source=source,
            asset_id=asset.pk,
            changes={"superseded_by": promotion.pk},
        )
        _notify(previous)
    if record is not None:
        keep_answer(record, claim=idempotency, promotion=promotion)
    return promotion


@_records_expiry
@transaction.atomic(durable=True)
def promotion_approve(*, actor, source: Source, promotion_id: int, comment: str = "") -> PromotionRequest:
    """Record actor's approval; when the quorum is reached, approve and (by default) apply at once."""
    promotion = _lock(promotion_id)
    _refuse_if_closed(promotion)
    policies = policies_for(promotion.asset, promotion.stage)
    with in_hand(promotion, policies):  # what the listeners of its events need, read once
        return _approve(promotion, actor=actor, source=source, comment=comment, policies=policies)


def _approve(promotion, *, actor, source: Source, comment: str, policies: list[Policy]) -> PromotionRequest:
    requirements, current_policy = requirements_for(promotion, policies)
    refusal = review_refusal(actor, promotion, requirements)
    if refusal is not None:
        raise refusal
    if promotion.reviews.filter(reviewer=actor).exists():
        raise Conflict("You have already reviewed this request.", type="already-decided")
    comment = comment.strip()
    Review.objects.create(promotion=promotion, reviewer=actor, decision=Decision.APPROVE, comment=comment)
    promotion.revision += 1
    promotion.save(update_fields=["revision", "updated_at"])
    counted = counted_approvals(promotion, requirements)
    required = requirements["required_approvals"]
    audit_record(
        actor=actor,
        action=Action.PROMOTION_APPROVED,
        target=promotion,
        source=source,
        asset_id=promotion.asset_id,
        changes={"comment": comment, "approvals": len(counted), "required": required},
    )
    if len(counted) >= required:
        _transition(promotion, Status.APPROVED, decided_at=timezone.now())
        audit_record(
            actor=None,
            action=Action.PROMOTION_QUORUM_REACHED,
            target=promotion,
            source=source,
            asset_id=promotion.asset_id,
            changes={"approvals": len(counted)},
        )
        if requirements["apply_on_approval"]:
            _apply(
                promotion,
                actor=actor,
                source=source,
                requirements=requirements,
                current_policy=current_policy,
                counted=counted,
            )
    return promotion


def _apply(
    promotion,
    *,
    actor,
    source: Source,
    requirements: dict,
    current_policy: Policy | None,
    counted: list[Review] | None = None,
) -> None:
    """Move the stage pointer for an approved request, after checking everything again (same transaction;
    `counted`: the approvals that count, when the approval that reached the quorum has just counted them
    under the same locks)."""
    problem = None
    if promotion.stage.protected and current_policy is None:
        problem = f"no policy governs {promotion.stage.name} any more"
    elif promotion.asset.is_archived:
        problem = f"{promotion.asset} was archived"
    else:
        count = len(counted if counted is not None else counted_approvals(promotion, requirements))
        failed = [r for r in gate_results(promotion, requirements) if not r.passed]
        pointer = StagePointer.objects.filter(asset=promotion.asset, stage=promotion.stage).first()
        if count < requirements["required_approvals"]:
            problem = f"only {count} of {requirements['required_approvals']} approvals still count"
        elif failed:
            problem = "gates failed: " + "; ".join(result.message for result in failed)
        elif pointer is not None and pointer.version_id == promotion.version_id:
            problem = f"{promotion.version} is already in {promotion.stage.name}"
    if problem is not None:
        _transition(promotion, Status.FAILED, problem)
        audit_record(
            actor=None,
            action=Action.PROMOTION_FAILED,
            target=promotion,
            source=source,
            asset_id=promotion.asset_id,
            changes={"reason": problem},
        )
        _notify(promotion)
        return
    stage_move(
        actor=actor,
        source=source,
        asset=promotion.asset,
        stage=promotion.stage,
        version=promotion.version,
        reason=f"promotion #{promotion.pk}: {promotion.justification}",
        promotion=promotion,
    )
    _transition(promotion, Status.APPLIED, applied_at=timezone.now())
    audit_record(
        actor=actor,
        action=Action.PROMOTION_APPLIED,
        target=promotion,
        source=source,
        asset_id=promotion.asset_id,
        changes={"stage": promotion.stage.name, "version": promotion.version.number},
    )
    _notify(promotion)


@_records_expiry
@transaction.atomic(durable=True)
def promotion_reject(*, actor, source: Source, promotion_id: int, comment: str) -> PromotionRequest:
    """An eligible reviewer rejects the request; a comment saying why is required."""
    if not comment.strip():
        raise Unprocessable("Say why you reject the request.", type="comment-required")
    promotion = _lock(promotion_id)
    _refuse_if_closed(promotion)
    policies = policies_for(promotion.asset, promotion.stage)
    requirements, _ = requirements_for(promotion, policies)
    refusal = review_refusal(actor, promotion, requirements)
    if refusal is not None:
        raise refusal
    if promotion.reviews.filter(reviewer=actor).exists():
        raise Conflict("You have already reviewed this request.", type="already-decided")
    Review.objects.create(
        promotion=promotion, reviewer=actor, decision=Decision.REJECT, comment=comment.strip()
    )
    _transition(promotion, Status.REJECTED, comment.strip(), decided_at=timezone.now())
    with in_hand(promotion, policies):
        audit_record(
            actor=actor,
            action=Action.PROMOTION_REJECTED,
            target=promotion,
            source=source,
            asset_id=promotion.asset_id,
            changes={"comment": comment.strip()},
        )
    _notify(promotion)
    return promotion


def _require_requester_or_manager(actor, promotion: PromotionRequest, verb: str) -> None:
    if actor.pk != promotion.requested_by_id and Role.MANAGE not in effective_roles(actor, promotion.asset):
        raise Forbidden(
            f"Only the requester or a manager of {promotion.asset} may {verb} it.", type="permission-denied"
        )


@_records_expiry
@transaction.atomic(durable=True)
def promotion_cancel(*, actor, source: Source, promotion_id: int, reason: str = "") -> PromotionRequest:
    """The requester (any of their tokens or sessions) or a manager withdraws an open request."""
    promotion = _lock(promotion_id)
    _require_requester_or_manager(actor, promotion, "cancel")
    _refuse_if_closed(promotion, allowed=OPEN_STATUSES)
    _transition(promotion, Status.CANCELLED, reason.strip())
    with in_hand(promotion, None):
        audit_record(
            actor=actor,
            action=Action.PROMOTION_CANCELLED,
            target=promotion,
            source=source,
            asset_id=promotion.asset_id,
            changes={"reason": reason.strip()},
        )
    _notify(promotion)
    return promotion


@_records_expiry
@transaction.atomic(durable=True)
def promotion_apply(*, actor, source: Source, promotion_id: int) -> PromotionRequest:
    """Apply an approved request whose policy does not apply on approval (requester or manager)."""
    promotion = _lock(promotion_id)
    _require_requester_or_manager(actor, promotion, "apply")
    _refuse_if_closed(promotion, allowed=(Status.APPROVED,))
    policies = policies_for(promotion.asset, promotion.stage)
    requirements, current_policy = requirements_for(promotion, policies)
    with in_hand(promotion, policies):
        _apply(
            promotion, actor=actor, source=source, requirements=requirements, current_policy=current_policy
        )
    return promotion


def _expire(promotion: PromotionRequest, source: Source) -> None:
    _transition(promotion, Status.EXPIRED, rules.expiry_reason(promotion.expires_at))
    audit_record(
        actor=None,
        action=Action.PROMOTION_EXPIRED,
        target=promotion,
        source=source,
        asset_id=promotion.asset_id,
        changes={"expires_at": promotion.expires_at},
    )
    _notify(promotion)


@transaction.atomic(durable=True)
def promotion_expire_if_due(*, promotion_id: int, source: Source) -> PromotionRequest:
    """Record the expiry of one request whose time ran out (when a decision finds it due)."""
    promotion = _lock(promotion_id)
    if rules.is_due(promotion.status, promotion.expires_at, timezone.now()):
        with in_hand(promotion, None):
            _expire(promotion, source)
    return promotion


@transaction.atomic(durable=True)
def promotion_expire_due(*, source: Source) -> int:
    """Expire every open request whose time ran out (the periodic task); returns how many."""
    due = PromotionRequest.objects.filter(status__in=OPEN_STATUSES, expires_at__lte=timezone.now())
    count = 0
    for promotion_id in list(due.values_list("pk", flat=True)):
        promotion = _lock(promotion_id)  # asset first, like every other transition
        if rules.is_due(promotion.status, promotion.expires_at, timezone.now()):
            with in_hand(promotion, None):
                _expire(promotion, source)
            count += 1
    return count
