"""Writing e-mails: from audit events as they are recorded (in the change's transaction), from the periodic
expiry check, and each person's choice of what to get.

Rows are written with the change they report and sent after it commits (notifications/tasks.py): a change
that rolls back e-mails nobody, and a mail server that fails never fails the change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from approvals.models import OPEN_STATUSES, Policy, PromotionRequest, Status
from approvals.requirements import promotion_in_hand, requirements_for
from audit.models import Action, AuditEvent
from audit.services import audit_record
from core.exceptions import InvalidInput
from core.source import Source
from registry.models import Asset

from . import messages, selectors
from .models import EmailNotification, Kind, NotificationSettings
from .tasks import enqueue_after_commit

DECISIONS = {
    Action.PROMOTION_REJECTED: "rejected",
    Action.PROMOTION_APPLIED: "applied",
    Action.PROMOTION_FAILED: "failed",
    Action.PROMOTION_EXPIRED: "expired",
    Action.PROMOTION_CANCELLED: "cancelled",
}
SETTINGS_FIELDS = [kind.value for kind in Kind]


def _queue(
    *,
    kind: Kind,
    reference: str,
    people: list,
    compose: Callable[[object], tuple[str, str]],
    promotion: PromotionRequest | None = None,
) -> int:
    """Write one e-mail per person (compose(person) gives its subject and body) unless that person already has
    this (kind, reference); have them sent when the transaction commits. Returns how many were new."""
    people = list({person.pk: person for person in people}.values())
    if not people:
        return 0
    now = timezone.now()
    rows = []
    for person in people:
        subject, body = compose(person)
        rows.append(
            EmailNotification(
                recipient=person,
                address=person.email,
                kind=kind,
                reference=reference,
                promotion=promotion,
                subject=subject[:200],
                body=body,
                next_attempt_at=now,
            )
        )
    # The unique key makes a second notice for the same event a no-op, even from two workers at once.
    EmailNotification.objects.bulk_create(rows, ignore_conflicts=True)
    ids = list(
        EmailNotification.objects.filter(
            kind=kind,
            reference=reference,
            recipient__in=[person.pk for person in people],
            status=EmailNotification.State.PENDING,
            created_at__gte=now,
        ).values_list("pk", flat=True)
    )
    enqueue_after_commit(ids)
    return len(ids)


def _promotion(event: AuditEvent) -> tuple[PromotionRequest | None, list[Policy] | None]:
    """The request the event is about, and the policies that apply to it when the service that recorded the
    event holds them already (approvals.requirements.in_hand; else None: read them)."""
    if event.target_kind != PromotionRequest._meta.label_lower:
        return None, None
    held = promotion_in_hand(int(event.target_id))
    if held is not None:
        return held.promotion, held.policies
    promotion = (
        PromotionRequest.objects.select_related("asset", "version", "stage", "requested_by", "base_version")
        .filter(pk=int(event.target_id))
        .first()
    )
    return promotion, None


def _review_requested(event: AuditEvent) -> None:
    promotion, policies = _promotion(event)
    if promotion is None:
        return
    requirements, _ = requirements_for(promotion, policies)
    reviewers = selectors.eligible_reviewers(
        promotion=promotion, requirements=requirements, kind=Kind.REVIEW_REQUESTED
    )
    subject, body = messages.review_requested(promotion)
    _queue(
        kind=Kind.REVIEW_REQUESTED,
        reference=f"promotion:{promotion.pk}",
        people=reviewers,
        compose=lambda _: (subject, body),
        promotion=promotion,
    )


def _requester_and_managers(promotion: PromotionRequest, kind: Kind) -> tuple[list, object | None]:
    """The asset's managers, and the requester when a person who may still see the asset (a service
    account's request reaches its team through the managers and the "My requests" list)."""
    managers = selectors.managers(asset_id=promotion.asset_id, kind=kind)
    requester = selectors.person_if_allowed(
        user_id=promotion.requested_by_id, asset_id=promotion.asset_id, kind=kind
    )
    return managers, requester


def _why(person, requester, asset: Asset, *, reviewer: bool = False) -> str:
    if requester is not None and person.pk == requester.pk:
        return "you requested this promotion"
    if reviewer:
        return f"you may review promotions of {asset}"
    return f"you manage {asset}"


def _decided(promotion: PromotionRequest, status: str, *, actor_id: int | None) -> None:
    managers, requester = _requester_and_managers(promotion, Kind.DECIDED)
    people = managers + ([requester] if requester else [])
    # Whoever made the decision knows it already.
    people = [person for person in people if person.pk != actor_id]
    reason = promotion.status_reason if status != "approved" else ""
    _queue(
        kind=Kind.DECIDED,
        reference=f"promotion:{promotion.pk}:{status}",
        people=people,
        compose=lambda person: messages.decided(
            promotion, status, reason, _why(person, requester, promotion.asset)
        ),
        promotion=promotion,
    )


def _on_decision(event: AuditEvent) -> None:
    promotion, _ = _promotion(event)
    if promotion is not None:
        _decided(promotion, DECISIONS[event.action], actor_id=event.actor_id)


def _on_quorum(event: AuditEvent) -> None:
    """Approved: when the policy applies on approval, the applied (or failed) event follows in this
    transaction and is the one reported; otherwise the request waits for someone to apply it: say so."""
    promotion, policies = _promotion(event)
    if promotion is None:
        return
    requirements, _ = requirements_for(promotion, policies)
    if not requirements["apply_on_approval"]:
        _decided(promotion, "approved", actor_id=None)


def _on_webhook_failing(event: AuditEvent) -> None:
    changes = event.changes or {}
    asset = Asset.objects.filter(pk=event.asset_id).first() if event.asset_id else None
    people = list(selectors.managers(asset_id=asset.pk, kind=Kind.WEBHOOK_FAILING)) if asset else []
    creator = selectors.person_named(
        username=str(changes.get("created_by") or ""),
        asset_id=asset.pk if asset else None,
        kind=Kind.WEBHOOK_FAILING,
    )
    if creator is not None:
        people.append(creator)
    url = str(changes.get("url") or "")

    def compose(person):
        why = (
            "you created this subscription" if creator and person.pk == creator.pk else f"you manage {asset}"
        )
        return messages.webhook_failing(
            url=url,
            asset=str(asset or ""),
            subscription=event.target_repr or f"webhook {event.target_id}",
            subscription_id=event.target_id,
            error=str(changes.get("last_error") or changes.get("error") or ""),
            why=why,
        )

    _queue(kind=Kind.WEBHOOK_FAILING, reference=f"event:{event.seq}", people=people, compose=compose)


HANDLERS: dict[str, Callable[[AuditEvent], None]] = {
    Action.PROMOTION_REQUESTED: _review_requested,
    Action.PROMOTION_QUORUM_REACHED: _on_quorum,
    **{action: _on_decision for action in DECISIONS},
    # Recorded by the webhooks app when a subscription's deliveries fail for good (changes: created_by, url).
    Action.WEBHOOK_FAILING: _on_webhook_failing,
}


def on_review_requested(event: AuditEvent) -> None:
    """The listener of `promotion.requested`, registered apart from on_audit_event with its question
    (selectors.reviewers_to_tell): on PostgreSQL it is called only when someone could be told."""
    _review_requested(event)


def on_audit_event(event: AuditEvent) -> None:
    """audit.services.on_record listener: write the e-mails an event calls for, in its transaction.

    A failure here fails the change with it: the e-mails owed for a change are written with the change or
    not at all, never silently dropped (sending happens after the commit, and a mail server's failure is
    retried from the outbox without touching the change).
    """
    handler = HANDLERS.get(str(event.action))
    if handler is not None:
        handler(event)


# The periodic warning before a request expires ----------------------------------------------------------


def promotions_warn_expiring(*, now: dt.datetime | None = None) -> int:
    """Warn about open requests that expire within settings.NOTIFY_EXPIRY_HOURS and were not warned about:
    the requester, the asset's managers, and (for a pending request) the eligible reviewers who have not
    reviewed it. Each person once per request (the unique key); returns how many e-mails were written."""
    now = now or timezone.now()
    horizon = now + dt.timedelta(hours=settings.NOTIFY_EXPIRY_HOURS)
    warned = EmailNotification.objects.filter(kind=Kind.EXPIRING, promotion=OuterRef("pk"))
    due = (
        PromotionRequest.objects.filter(status__in=OPEN_STATUSES, expires_at__gt=now, expires_at__lte=horizon)
        .exclude(Exists(warned))
        .order_by("expires_at")
    )
    written = 0
    for promotion_id in list(due.values_list("pk", flat=True)[:1000]):
        with transaction.atomic():
            written += _warn_expiring(promotion_id)
    return written


def _warn_expiring(promotion_id: int) -> int:
    promotion = (
        PromotionRequest.objects.select_related("asset", "version", "stage", "requested_by", "base_version")
        .filter(pk=promotion_id, status__in=OPEN_STATUSES)
        .first()
    )
    if promotion is None:
        return 0
    managers, requester = _requester_and_managers(promotion, Kind.EXPIRING)
    reviewers = []
    if promotion.status == Status.PENDING:
        requirements, _ = requirements_for(promotion)
        reviewers = selectors.eligible_reviewers(
            promotion=promotion, requirements=requirements, kind=Kind.EXPIRING
        )
    reviewer_ids = {person.pk for person in reviewers}
    managing = {person.pk for person in managers}

    def compose(person):
        is_reviewer = person.pk in reviewer_ids and person.pk not in managing
        return messages.expiring(promotion, _why(person, requester, promotion.asset, reviewer=is_reviewer))

    return _queue(
        kind=Kind.EXPIRING,
        reference=f"promotion:{promotion.pk}",
        people=[*([requester] if requester else []), *managers, *reviewers],
        compose=compose,
        promotion=promotion,
    )


# Each person's choices -----------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def notification_settings_update(*, actor, source: Source, choices: dict[str, bool]) -> NotificationSettings:
    """actor turns kinds of e-mail on or off for themselves (a `notifications.settings_updated` event)."""
    unknown = set(choices) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput.field(sorted(unknown)[0], "is not a kind of notification")
    row, _ = NotificationSettings.objects.select_for_update().get_or_create(user=actor)
    changed = {
        field: {"before": getattr(row, field), "after": bool(value)}
        for field, value in choices.items()
        if getattr(row, field) != bool(value)
    }
    if not changed:
        return row
    for field, change in changed.items():
        setattr(row, field, change["after"])
    row.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor, action=Action.NOTIFICATION_SETTINGS_UPDATED, target=actor, source=source, changes=changed
    )
    return row
