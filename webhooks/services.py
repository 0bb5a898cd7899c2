"""Every change to a subscription, each in one transaction with its audit event, and the states that
deliveries put a subscription in (failing, recovered).

A subscription's URL is checked before its transaction begins, by the rules of promotion callbacks
(core/netguard.py with CALLBACK_ALLOWED_HOSTS / CALLBACK_ALLOWED_NETWORKS): no lock is held while a resolver
chosen by the URL's owner takes its time. Audit events never carry the secret.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.models import OutboxMessage
from approvals.tasks import enqueue
from audit.models import Action
from audit.services import audit_record
from core import netguard
from core.exceptions import InvalidInput, NotFound
from core.source import Source
from registry.models import Asset
from webhooks.models import WebhookSubscription, new_secret
from webhooks.permissions import require_deleter, require_editor, require_subscriber

EVERY_EVENT = "*"
MAX_EVENTS = 100
_UNSET = object()


def check_url(url: str, *, field: str = "url") -> str:
    """The URL if the registry may POST there (as for promotion callbacks), else 400 naming field."""
    if not isinstance(url, str) or not url:
        raise InvalidInput.field(field, "is required")
    if len(url) > 1000:
        raise InvalidInput.field(field, "must be at most 1000 characters")
    try:
        target = netguard.parse_url(url, allowed_hosts=settings.CALLBACK_ALLOWED_HOSTS)
        if not target.trusted:  # an allow-listed host is looked up only when a message is sent
            netguard.resolve(
                target,
                allowed_networks=netguard.parse_networks(settings.CALLBACK_ALLOWED_NETWORKS),
                timeout=settings.WEBHOOK_TIMEOUT,
            )
    except netguard.Refused as exc:
        raise InvalidInput.field(field, str(exc)) from None
    return url


def clean_events(events) -> list[str]:
    """Known audit actions, sorted and without repeats, or ["*"]; 400 naming the first unknown one."""
    if not isinstance(events, list | tuple) or not events:
        raise InvalidInput.field("events", 'must be a non-empty list of event types, or ["*"]')
    if len(events) > MAX_EVENTS:
        raise InvalidInput.field("events", f"must list at most {MAX_EVENTS} event types")
    for name in events:
        if not isinstance(name, str):
            raise InvalidInput.field("events", "must be a list of event type names")
        if name != EVERY_EVENT and name not in Action.values:
            raise InvalidInput.field("events", f"{name[:100]!r} is not an event type")
    if EVERY_EVENT in events:
        if len(set(events)) > 1:
            raise InvalidInput.field("events", '"*" means every event: list it alone')
        return [EVERY_EVENT]
    return sorted(set(events))


def _clean_description(description) -> str:
    if not isinstance(description, str):
        raise InvalidInput.field("description", "must be a string")
    if len(description) > 500:
        raise InvalidInput.field("description", "must be at most 500 characters")
    return description


def _fields(subscription: WebhookSubscription) -> dict:
    """What an audit event says of a subscription (never its secret)."""
    return {
        "url": subscription.url,
        "events": subscription.events,
        "asset": subscription.asset_ref,
        "description": subscription.description,
        "active": subscription.active,
        "status": subscription.status,
    }


def webhook_create(
    *,
    actor,
    source: Source,
    url: str,
    events,
    asset: Asset | None = None,
    description: str = "",
    active: bool = True,
) -> WebhookSubscription:
    """Subscribe url to events of asset (None: every asset; admins only). Its `secret` is for the answer."""
    require_subscriber(actor, asset)  # refused before the URL's host is looked up
    url = check_url(url)
    events = clean_events(events)
    description = _clean_description(description)
    if not isinstance(active, bool):
        raise InvalidInput.field("active", "must be true or false")
    return _create(
        actor=actor,
        source=source,
        url=url,
        events=events,
        asset=asset,
        description=description,
        active=active,
    )


@transaction.atomic(durable=True)
def _create(*, actor, source, url, events, asset, description, active) -> WebhookSubscription:
    require_subscriber(actor, asset)
    subscription = WebhookSubscription.objects.create(
        url=url,
        events=events,
        asset=asset,
        description=description,
        active=active,
        secret=new_secret(),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action=Action.WEBHOOK_CREATED,
        target=subscription,
        source=source,
        asset_id=subscription.asset_id,
        changes={"after": _fields(subscription)},
    )
    return subscription


def webhook_update(
    *,
    actor,
    source: Source,
    subscription: WebhookSubscription,
    url=_UNSET,
    events=_UNSET,
    asset=_UNSET,
    active=_UNSET,
    description=_UNSET,
) -> WebhookSubscription:
    """Change a subscription. Setting active on a failing one makes it active again (status active)."""
    require_editor(actor, subscription)
    if asset is not _UNSET:
        require_subscriber(actor, asset)
    fields = {}
    if url is not _UNSET:
        fields["url"] = check_url(url)
    if events is not _UNSET:
        fields["events"] = clean_events(events)
    if description is not _UNSET:
        fields["description"] = _clean_description(description)
    if active is not _UNSET:
        if not isinstance(active, bool):
            raise InvalidInput.field("active", "must be true or false")
        fields["active"] = active
    if asset is not _UNSET:
        fields["asset"] = asset
    return _update(actor=actor, source=source, pk=subscription.pk, fields=fields)


@transaction.atomic(durable=True)
def _update(*, actor, source, pk, fields: dict) -> WebhookSubscription:
    subscription = (
        WebhookSubscription.objects.select_for_update(of=("self",))
        .select_related("asset", "created_by")
        .get(pk=pk)
    )
    require_editor(actor, subscription)
    if "asset" in fields:
        require_subscriber(actor, fields["asset"])
    before = _fields(subscription)
    for key, value in fields.items():
        setattr(subscription, key, value)
    if fields.get("active") is True and subscription.status == WebhookSubscription.Status.FAILING:
        subscription.status, subscription.failing_since = WebhookSubscription.Status.ACTIVE, None
    subscription.save()
    after = _fields(subscription)
    changed = [key for key in after if before[key] != after[key]]
    audit_record(
        actor=actor,
        action=Action.WEBHOOK_UPDATED,
        target=subscription,
        source=source,
        asset_id=subscription.asset_id,
        changes={"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed}},
    )
    return subscription


@transaction.atomic(durable=True)
def webhook_delete(*, actor, source: Source, subscription: WebhookSubscription) -> None:
    """Remove a subscription with its messages: what was not delivered yet is never sent."""
    # Its messages are locked before the subscription, in the order a worker takes them (a message, then,
    # when it ends, its subscription: delivery_outcome), so that the two never wait on each other.
    list(OutboxMessage.objects.select_for_update().filter(webhook=str(subscription.pk)).values_list("pk"))
    subscription = (
        WebhookSubscription.objects.select_for_update(of=("self",))
        .select_related("asset")
        .get(pk=subscription.pk)
    )
    require_deleter(actor, subscription)
    audit_record(
        actor=actor,
        action=Action.WEBHOOK_DELETED,
        target=subscription,
        source=source,
        asset_id=subscription.asset_id,
        changes={"before": _fields(subscription)},
    )
    # After the event: its own message, if the subscription asked for webhook.deleted, goes with the rest.
    OutboxMessage.objects.filter(webhook=str(subscription.pk)).delete()
    subscription.delete()


@transaction.atomic(durable=True)
def delivery_redeliver(
    *, actor, source: Source, subscription: WebhookSubscription, delivery_id: int
) -> OutboxMessage:
    """Send a message again: pending and due now, with its webhook id and its attempts so far (its count of
    attempts starts over, so a message that had failed for good gets its retries again)."""
    subscription = WebhookSubscription.objects.select_related("asset").get(pk=subscription.pk)
    require_editor(actor, subscription)
    message = (
        OutboxMessage.objects.select_for_update().filter(webhook=str(subscription.pk), pk=delivery_id).first()
    )
    if message is None:
        raise NotFound("Not found.")
    before = message.status
    message.status, message.attempts, message.next_attempt_at = OutboxMessage.State.PENDING, 0, timezone.now()
    message.delivered_at = None
    message.save(update_fields=["status", "attempts", "next_attempt_at", "delivered_at"])
    audit_record(
        actor=actor,
        action=Action.WEBHOOK_REDELIVERED,
        target=subscription,
        source=source,
        asset_id=subscription.asset_id,
        changes={
            "delivery": message.pk,
            "webhook_id": message.webhook_id,
            "event_type": message.event_type,
            "status_before": before,
        },
    )
    transaction.on_commit(lambda: enqueue(message.pk))
    return message


# Outcomes of deliveries (approvals.tasks.on_outcome, in the transaction that records the attempt) ----------


def delivery_outcome(message: OutboxMessage) -> None:
    """A subscription's message was delivered (a failing subscription recovers) or failed for good (an
    active one becomes failing); each change of state is one audit event by the system."""
    subscription = (
        WebhookSubscription.objects.select_for_update(of=("self",))
        .select_related("asset", "created_by")
        .filter(pk=_subscription_id(message))
        .first()
    )
    if subscription is None:
        return
    delivered = message.status == OutboxMessage.State.DELIVERED
    Status = WebhookSubscription.Status
    if delivered and subscription.status == Status.FAILING:
        subscription.status, subscription.failing_since = Status.ACTIVE, None
        action = Action.WEBHOOK_RECOVERED
    elif not delivered and subscription.status == Status.ACTIVE:
        subscription.status, subscription.failing_since = Status.FAILING, timezone.now()
        action = Action.WEBHOOK_FAILING
    else:
        return
    subscription.save(update_fields=["status", "failing_since", "updated_at"])
    audit_record(
        actor=None,
        action=action,
        target=subscription,
        source=Source.task(),
        asset_id=subscription.asset_id,
        changes={
            "created_by": subscription.created_by.get_username(),
            "url": subscription.url,
            "asset": subscription.asset_ref,
            "delivery": message.pk,
            "webhook_id": message.webhook_id,
            "event_type": message.event_type,
            "attempts": message.attempts,
            "error": message.last_error[:500],
        },
    )


def signing_key(message: OutboxMessage) -> bytes | None:
    """The HMAC key of a subscription's message (approvals.tasks.set_signing_keys); None once deleted."""
    secret = WebhookSubscription.objects.filter(pk=_subscription_id(message)).values_list("secret", flat=True)
    secret = secret.first()
    return WebhookSubscription(secret=secret).signing_key if secret else None


def _subscription_id(message: OutboxMessage) -> int | None:
    try:
        return int(message.webhook)
    except ValueError:
        return None
