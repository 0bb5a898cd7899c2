"""The representation of a promotion request: what the API answers and what a callback POSTs, one shape.

promotion_payload() renders it; the serializers below are its definition (and the OpenAPI schema's components,
through approvals/api/serializers.py, which uses them).
"""

from __future__ import annotations

import json

from rest_framework import serializers

from approvals.models import PromotionRequest, Status
from registry.api.serializers import asset_path


class ReviewOut(serializers.Serializer):
    reviewer = serializers.CharField(source="reviewer.username")
    decision = serializers.CharField()
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


class PromotionOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=Status.choices)
    status_reason = serializers.CharField()
    final = serializers.SerializerMethodField()
    kind = serializers.CharField(source="asset.kind")
    name = serializers.CharField(source="asset.name")
    version = serializers.IntegerField(source="version.number")
    digest = serializers.CharField(source="version.digest")
    stage = serializers.CharField(source="stage.name")
    base_version = serializers.IntegerField(source="base_version.number", allow_null=True, default=None)
    rollback = serializers.BooleanField()
    justification = serializers.CharField()
    ci = serializers.DictField()
    callback_url = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    required_approvals = serializers.IntegerField(source="policy_snapshot.required_approvals")
    approvals = serializers.SerializerMethodField()
    reviews = ReviewOut(many=True, source="reviews.all")
    superseded_by = serializers.IntegerField(source="superseded_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    applied_at = serializers.DateTimeField(allow_null=True)
    revision = serializers.IntegerField()
    asset_url = serializers.SerializerMethodField()

    def get_url(self, promotion) -> str:
        return f"/api/v1/promotions/{promotion.pk}"

    def get_final(self, promotion) -> bool:
        return not promotion.is_open

    def get_approvals(self, promotion) -> int:
        """Approvals received (the count that decides is recomputed live at each decision)."""
        return sum(1 for review in promotion.reviews.all() if review.decision == "approve")

    def get_asset_url(self, promotion) -> str:
        return asset_path(promotion.asset)


def promotion_payload(promotion: PromotionRequest) -> dict:
    """The request as the API shows it (load it with its asset, version, stage, requester, base version and
    reviews)."""
    return PromotionOut(promotion).data


def callback_body(promotion: PromotionRequest) -> bytes:
    """What a callback POSTs: the event type and the request as the API shows it, as JSON."""
    return json.dumps(
        {"type": f"promotion.{promotion.status}", "data": promotion_payload(promotion)}
    ).encode()
