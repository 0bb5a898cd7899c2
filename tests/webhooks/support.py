"""Helpers of the webhook tests (imported by its modules)."""

from approvals.models import OutboxMessage
from approvals.tasks import deliver_message
from core.source import Source
from registry.services import asset_update
from webhooks.models import WebhookSubscription
from webhooks.services import webhook_create

_tags = iter(range(10**6))


def subscribe(actor, url, events=("*",), asset=None, **extra) -> WebhookSubscription:
    return webhook_create(
        actor=actor, source=Source.cli(), url=url, events=list(events), asset=asset, **extra
    )


def touch(asset, actor=None):
    """Record one asset.updated event about asset (the system changes its tags)."""
    asset_update(actor=actor, source=Source.cli(), asset=asset, tags=[f"t{next(_tags)}"])


def messages_for(subscription, *, own=False) -> list[OutboxMessage]:
    """The subscription's messages, oldest first; without the webhook.* events unless own (a subscription
    to "*" hears its own creation, for one)."""
    messages = OutboxMessage.objects.filter(webhook=str(subscription.pk)).order_by("pk")
    if not own:
        messages = messages.exclude(event_type__startswith="webhook.")
    return list(messages)


def deliver_all(subscription, now=None) -> list[str | None]:
    return [deliver_message(message.pk, now=now) for message in messages_for(subscription)]
