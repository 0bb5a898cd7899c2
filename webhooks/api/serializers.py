"""API shapes of subscriptions and their deliveries. Shape only: the rules live in webhooks.services."""

from __future__ import annotations

from rest_framework import serializers

from core.api import StrictInput

URL_HELP = (
    "http(s) URL the registry POSTs each event to, signed. Its host must resolve to public addresses only, "
    "unless the server allows it (the rules of promotion callbacks, docs/ci.md)."
)
EVENTS_HELP = 'Audit event types (e.g. "promotion.applied"), or ["*"] for every event of the asset(s).'
ASSET_HELP = 'The asset, as "kind/name" (e.g. "model/fraud"); null: every asset (registry admins only).'


class WebhookIn(StrictInput):
    url = serializers.CharField(max_length=1000, help_text=URL_HELP)
    events = serializers.ListField(child=serializers.CharField(max_length=100), help_text=EVENTS_HELP)
    asset = serializers.CharField(
        max_length=120, required=False, allow_null=True, default=None, help_text=ASSET_HELP
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    active = serializers.BooleanField(required=False, default=True)


class WebhookUpdateIn(StrictInput):
    url = serializers.CharField(max_length=1000, required=False, help_text=URL_HELP)
    events = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text=EVENTS_HELP
    )
    asset = serializers.CharField(max_length=120, required=False, allow_null=True, help_text=ASSET_HELP)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    active = serializers.BooleanField(
        required=False, help_text="false: no new events are queued. true on a failing one: active again."
    )


class WebhookOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    asset = serializers.CharField(source="asset_ref", allow_null=True)
    description = serializers.CharField()
    active = serializers.BooleanField()
    status = serializers.CharField(
        help_text="active, or failing (a message failed for good) since failing_since."
    )
    failing_since = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    deliveries_url = serializers.SerializerMethodField()

    def get_deliveries_url(self, subscription) -> str:
        return f"/api/v1/webhooks/{subscription.pk}/deliveries"


class WebhookCreatedOut(WebhookOut):
    secret = serializers.CharField(
        help_text='The signing secret ("whsec_" + base64 key): shown in this answer only, keep it now.'
    )


class AttemptOut(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    error = serializers.CharField()


class DeliveryOut(serializers.Serializer):
    id = serializers.IntegerField()
    webhook_id = serializers.CharField(help_text="The webhook-id header: the same on every attempt.")
    event_type = serializers.CharField()
    status = serializers.CharField(help_text="pending, delivered, or failed (for good).")
    next_attempt_at = serializers.DateTimeField(help_text="When it is tried next, while pending.")
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    attempts = AttemptOut(many=True, source="delivery_attempts.all")
    redeliver_url = serializers.SerializerMethodField()

    def get_redeliver_url(self, message) -> str:
        return f"/api/v1/webhooks/{message.webhook}/deliveries/{message.pk}/redeliver"
