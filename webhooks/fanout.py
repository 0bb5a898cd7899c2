"""Fan-out: every audit event becomes one outbox message per subscription that asks for it, written in the
event's transaction (audit.services.on_record), delivered once it commits (approvals.tasks.enqueue).

Who receives an event:

- an event about an asset (asset_id set) goes to the active subscriptions to that asset or to every asset
  (asset None) that list its action or "*", whose creator is still active and may still see the asset
  (registry permissions, now): a subscriber never hears of an asset it cannot see;
- an event about no asset (sign-ins, accounts, tokens, teams) goes only to subscriptions to every asset whose
  creator is still an admin, and only when they list the action by name: "*" means every event of the
  assets, not the sign-in traffic.

Failing subscriptions keep receiving: their messages are queued and tried like any other, and the first one
delivered marks the subscription recovered. An inactive subscription (active false) receives nothing new.

Cost per audited write: on PostgreSQL, none when no candidate subscription exists (the question is asked
inside the audit append's own statement, see audit.appender); otherwise one query for the candidate
subscriptions (none match: that is all); when some match, one for their creators' grants on the asset, one
for the asset (and one for a promotion), one insert.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.permissions import is_admin, reads_everything
from approvals.models import OutboxMessage, PromotionRequest
from approvals.tasks import enqueue
from audit.canonical import format_time
from audit.models import AuditEvent
from registry.models import Asset, AssetGroupObjectPermission, AssetUserObjectPermission
from webhooks.models import WebhookSubscription
from webhooks.services import EVERY_EVENT

PROMOTION_TARGET = PromotionRequest._meta.label_lower


def _wants(subscription: WebhookSubscription, event: AuditEvent) -> bool:
    if event.action in subscription.events:
        return True
    return event.asset_id is not None and EVERY_EVENT in subscription.events


def _seeing(creator_ids: set[int], asset_id: int) -> set[int]:
    """Which of these users hold a grant on the asset (directly or through a team): one query."""
    direct = AssetUserObjectPermission.objects.filter(content_object_id=asset_id, user_id__in=creator_ids)
    teams = AssetGroupObjectPermission.objects.filter(content_object_id=asset_id, group__user__in=creator_ids)
    rows = direct.values_list("user_id").union(teams.values_list("group__user"))
    return {user_id for (user_id,) in rows}


def candidates(asset_id: int | None, action: str = ""):
    """The active subscriptions that could receive an event about this asset (or about none): a superset
    of the recipients. Also what audit.services.on_record asks before calling fan_out (`wanted`)."""
    scope = Q(asset__isnull=True)
    if asset_id is not None:
        scope |= Q(asset_id=asset_id)
    return WebhookSubscription.objects.filter(scope, active=True)


def recipients(event: AuditEvent) -> list[WebhookSubscription]:
    """The subscriptions that receive event (the rules above)."""
    candidates_ = candidates(event.asset_id).select_related("created_by")
    matching = [s for s in candidates_ if _wants(s, event) and s.created_by.is_active]
    if not matching:
        return []
    if event.asset_id is None:
        return [s for s in matching if is_admin(s.created_by)]
    granted = {s.created_by_id for s in matching if not reads_everything(s.created_by)}
    if granted:
        granted = _seeing(granted, event.asset_id)
    return [s for s in matching if reads_everything(s.created_by) or s.created_by_id in granted]


def event_data(event: AuditEvent) -> dict:
    """The event as a webhook carries it: its public form, the asset, and for a promotion the request."""
    data = {
        "seq": event.seq,
        "action": event.action,
        "occurred_at": format_time(event.occurred_at),
        "actor": {"kind": event.actor_kind, "name": event.actor_repr},
        "target": {"kind": event.target_kind, "id": event.target_id, "repr": event.target_repr},
        "asset": None,
        "changes": event.changes,
        "chain_hash": bytes(event.chain_hash).hex(),
    }
    if event.asset_id is not None:
        asset = Asset.objects.filter(pk=event.asset_id).values("id", "kind", "name").first()
        data["asset"] = asset and {"kind": asset["kind"], "name": asset["name"], "id": asset["id"]}
    if event.target_kind == PROMOTION_TARGET:
        promotion = (
            PromotionRequest.objects.filter(pk=event.target_id)
            .values("id", "status", "version__number", "stage__name")
            .first()
        )
        if promotion is not None:
            data["promotion"] = {
                "id": promotion["id"],
                "status": promotion["status"],
                "version": promotion["version__number"],
                "stage": promotion["stage__name"],
                "url": f"/api/v1/promotions/{promotion['id']}",
                "page": f"/promotions/{promotion['id']}/",
            }
    return data


def body(event: AuditEvent, data: dict) -> bytes:
    return json.dumps(
        {"type": event.action, "timestamp": format_time(event.occurred_at), "data": data},
        separators=(",", ":"),
    ).encode()


def fan_out(event: AuditEvent) -> None:
    """audit.services.on_record listener: the event's messages, in its transaction."""
    subscriptions = recipients(event)
    if not subscriptions:
        return
    payload = body(event, event_data(event))
    now = timezone.now()
    messages = OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                webhook_id=f"evt_{event.seq}_wh_{subscription.pk}",
                event_type=event.action,
                url=subscription.url,
                payload=payload,
                label=f"webhook {subscription.pk}: event {event.seq} ({event.action})",
                webhook=str(subscription.pk),
                next_attempt_at=now,
            )
            for subscription in subscriptions
        ]
    )
    ids = [message.pk for message in messages]

    def send() -> None:
        for message_id in ids:
            enqueue(message_id)

    transaction.on_commit(send)
