"""Reads of subscriptions and their deliveries, restricted to what the reader may see."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from accounts.permissions import is_admin
from approvals.models import OutboxAttempt, OutboxMessage
from core.exceptions import NotFound
from registry.models import AssetGroupObjectPermission, AssetUserObjectPermission
from registry.permissions import CODENAMES, Role
from webhooks.models import WebhookSubscription


def _managed_asset_ids(user):
    """A subquery: the ids of the assets user holds manage on, directly or through a team."""
    codename = CODENAMES[Role.MANAGE]
    direct = AssetUserObjectPermission.objects.filter(user=user, permission__codename=codename)
    teams = AssetGroupObjectPermission.objects.filter(group__user=user, permission__codename=codename)
    return Q(asset_id__in=direct.values("content_object_id")) | Q(
        asset_id__in=teams.values("content_object_id")
    )


def subscription_list_for_user(*, user) -> QuerySet[WebhookSubscription]:
    """The subscriptions user may see: its own, its managed assets' (admins: all), newest first."""
    subscriptions = WebhookSubscription.objects.select_related("asset", "created_by").order_by("-id")
    if not user.is_authenticated:
        return subscriptions.none()
    if is_admin(user):
        return subscriptions
    if user.is_auditor:  # read-only accounts hold no manage role
        return subscriptions.filter(created_by=user)
    return subscriptions.filter(Q(created_by=user) | _managed_asset_ids(user))


def subscription_get_for_user(*, user, pk) -> WebhookSubscription:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise NotFound("Not found.") from None
    subscription = subscription_list_for_user(user=user).filter(pk=pk).first()
    if subscription is None:
        raise NotFound("Not found.")
    return subscription


def delivery_list(*, subscription: WebhookSubscription) -> QuerySet[OutboxMessage]:
    """The subscription's messages, newest first, each with its attempts (oldest first)."""
    return (
        OutboxMessage.objects.filter(webhook=str(subscription.pk))
        .defer("payload")
        .prefetch_related(Prefetch("delivery_attempts", queryset=OutboxAttempt.objects.order_by("at", "pk")))
        .order_by("-id")
    )


def delivery_get(*, subscription: WebhookSubscription, pk) -> OutboxMessage:
    message = OutboxMessage.objects.filter(webhook=str(subscription.pk), pk=pk).first()
    if message is None:
        raise NotFound("Not found.")
    return message
