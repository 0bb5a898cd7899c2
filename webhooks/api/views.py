"""The webhook subscription API: subscribe, list, change, delete, and read and redeliver deliveries.

Reads need a token's `read` scope, changes its `manage` scope (as policies and grants do).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.models import Scope
from approvals.models import OutboxMessage
from core.api import api_source, validated
from core.exceptions import InvalidInput
from registry import selectors as registry_selectors
from registry.models import AssetKind
from webhooks import selectors, services
from webhooks.api import serializers as s
from webhooks.models import WebhookSubscription


def asset_from_ref(user, ref):
    """An asset named "kind/name" that user may see (404 otherwise, as everywhere), or None for null."""
    if ref is None:
        return None
    kind, _, name = ref.partition("/")
    if kind not in AssetKind.values or not name or "/" in name:
        raise InvalidInput.field(
            "asset", f'must be "kind/name" with kind one of {", ".join(AssetKind.values)}'
        )
    return registry_selectors.asset_get_for_user(user=user, kind=kind, name=name)


class WebhookListView(generics.GenericAPIView):
    serializer_class = s.WebhookOut
    queryset = WebhookSubscription.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(responses=s.WebhookOut(many=True))
    def get(self, request):
        """The subscriptions you may see: yours, your managed assets' (admins: every one), newest first."""
        page = self.paginate_queryset(selectors.subscription_list_for_user(user=request.user))
        return self.get_paginated_response(s.WebhookOut(page, many=True).data)

    @extend_schema(request=s.WebhookIn, responses={201: s.WebhookCreatedOut})
    def post(self, request):
        """Subscribe a URL to events. The answer carries the signing secret, this once."""
        data = validated(s.WebhookIn, request)
        asset = asset_from_ref(request.user, data["asset"])
        subscription = services.webhook_create(
            actor=request.user,
            source=api_source(request),
            url=data["url"],
            events=data["events"],
            asset=asset,
            description=data["description"],
            active=data["active"],
        )
        subscription = selectors.subscription_get_for_user(user=request.user, pk=subscription.pk)
        return Response(
            s.WebhookCreatedOut(subscription).data,
            status=201,
            headers={"Location": f"/api/v1/webhooks/{subscription.pk}", "Cache-Control": "no-store"},
        )


class WebhookDetailView(generics.GenericAPIView):
    serializer_class = s.WebhookOut
    queryset = WebhookSubscription.objects.none()
    token_scope = Scope.MANAGE

    def get(self, request, pk: int):
        return Response(s.WebhookOut(selectors.subscription_get_for_user(user=request.user, pk=pk)).data)

    @extend_schema(request=s.WebhookUpdateIn, responses=s.WebhookOut)
    def patch(self, request, pk: int):
        subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
        data = dict(validated(s.WebhookUpdateIn, request))
        if "asset" in data:
            data["asset"] = asset_from_ref(request.user, data["asset"])
        services.webhook_update(
            actor=request.user, source=api_source(request), subscription=subscription, **data
        )
        return Response(s.WebhookOut(selectors.subscription_get_for_user(user=request.user, pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        """Remove the subscription and its deliveries: what was not delivered yet is never sent."""
        subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
        services.webhook_delete(actor=request.user, source=api_source(request), subscription=subscription)
        return Response(status=204)


class DeliveryListView(generics.GenericAPIView):
    serializer_class = s.DeliveryOut
    queryset = OutboxMessage.objects.none()

    @extend_schema(responses=s.DeliveryOut(many=True))
    def get(self, request, pk: int):
        """The subscription's messages, newest first, each with its attempts."""
        subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
        page = self.paginate_queryset(selectors.delivery_list(subscription=subscription))
        return self.get_paginated_response(s.DeliveryOut(page, many=True).data)


class RedeliverView(generics.GenericAPIView):
    serializer_class = s.DeliveryOut
    queryset = OutboxMessage.objects.none()
    token_scope = Scope.MANAGE

    @extend_schema(request=None, responses={202: s.DeliveryOut})
    def post(self, request, pk: int, delivery: int):
        """Send a message again, now, with the same webhook-id; its attempts so far stay in its log."""
        subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
        message = services.delivery_redeliver(
            actor=request.user, source=api_source(request), subscription=subscription, delivery_id=delivery
        )
        message = selectors.delivery_list(subscription=subscription).get(pk=message.pk)
        return Response(s.DeliveryOut(message).data, status=202)
