"""The representation of a promotion request: what the API answers and what a callback POSTs, one shape.

The serializers below are its definition (and the OpenAPI schema's components, through
approvals/api/serializers.py, which uses them). promotion_payload() renders it with a plain function over
PromotionFacts, the values the answer shows, which CI's poll reads in one statement without building the
request's model instances (approvals.selectors.promotion_poll_for_user); a test keeps the two equal over many
states (tests/approvals/test_payloads.py). The serializer took most of a poll's time: DRF copies its declared
fields on every use.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from rest_framework import serializers

from approvals.models import OPEN_STATUSES, PromotionRequest, Status
from registry.api.serializers import PLURAL, asset_path


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


@dataclass(frozen=True, slots=True)
class ReviewFacts:
    reviewer: str  # username
    decision: str
    comment: str
    created_at: dt.datetime


@dataclass(slots=True)
class PromotionFacts:
    """What the answer about a promotion request shows, as plain values (PromotionOut's fields)."""

    id: int
    status: str
    status_reason: str
    revision: int
    kind: str
    name: str
    version: int
    digest: str
    stage: str
    base_version: int | None
    rollback: bool
    justification: str
    ci: dict
    callback_url: str
    requested_by: str  # username
    policy_snapshot: dict
    superseded_by: int | None
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    applied_at: dt.datetime | None
    reviews: list[ReviewFacts]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @classmethod
    def of(cls, promotion: PromotionRequest) -> PromotionFacts:
        """The facts of a loaded request (with its asset, version, stage, requester, base version and
        reviews)."""
        base = promotion.base_version
        return cls(
            id=promotion.pk,
            status=promotion.status,
            status_reason=promotion.status_reason,
            revision=promotion.revision,
            kind=promotion.asset.kind,
            name=promotion.asset.name,
            version=promotion.version.number,
            digest=promotion.version.digest,
            stage=promotion.stage.name,
            base_version=None if base is None else base.number,
            rollback=promotion.rollback,
            justification=promotion.justification,
            ci=promotion.ci,
            callback_url=promotion.callback_url,
            requested_by=promotion.requested_by.username,
            policy_snapshot=promotion.policy_snapshot,
            superseded_by=promotion.superseded_by_id,
            created_at=promotion.created_at,
            expires_at=promotion.expires_at,
            decided_at=promotion.decided_at,
            applied_at=promotion.applied_at,
            reviews=[
                ReviewFacts(review.reviewer.username, review.decision, review.comment, review.created_at)
                for review in promotion.reviews.all()
            ],
        )


# The serializer fields' own conversions, used as they are: a time is ISO 8601 in the current time zone with
# "Z" for UTC; a status is its choice's value; a boolean is True or False.
_time = serializers.DateTimeField().to_representation
_STATUS = serializers.ChoiceField(choices=Status.choices)
_BOOLEAN = serializers.BooleanField()


def _at(value: dt.datetime | None) -> str | None:
    return None if value is None else _time(value)


def _whole(value) -> int | None:
    return None if value is None else int(value)


def _text(value) -> str | None:
    return None if value is None else str(value)


def facts_payload(facts: PromotionFacts) -> dict:
    """PromotionOut(promotion).data, field for field, built directly."""
    reviews = [
        {
            "reviewer": _text(review.reviewer),
            "decision": _text(review.decision),
            "comment": _text(review.comment),
            "created_at": _at(review.created_at),
        }
        for review in facts.reviews
    ]
    ci = facts.ci
    return {
        "id": _whole(facts.id),
        "url": f"/api/v1/promotions/{facts.id}",
        "status": _STATUS.to_representation(facts.status) if facts.status is not None else None,
        "status_reason": _text(facts.status_reason),
        "final": not facts.is_open,
        "kind": _text(facts.kind),
        "name": _text(facts.name),
        "version": _whole(facts.version),
        "digest": _text(facts.digest),
        "stage": _text(facts.stage),
        "base_version": _whole(facts.base_version),
        "rollback": _BOOLEAN.to_representation(facts.rollback) if facts.rollback is not None else None,
        "justification": _text(facts.justification),
        "ci": None if ci is None else {str(key): value for key, value in ci.items()},
        "callback_url": _text(facts.callback_url),
        "requested_by": _text(facts.requested_by),
        "required_approvals": _whole(facts.policy_snapshot["required_approvals"]),
        "approvals": sum(1 for review in facts.reviews if review.decision == "approve"),
        "reviews": reviews,
        "superseded_by": _whole(facts.superseded_by),
        "created_at": _at(facts.created_at),
        "expires_at": _at(facts.expires_at),
        "decided_at": _at(facts.decided_at),
        "applied_at": _at(facts.applied_at),
        "revision": _whole(facts.revision),
        "asset_url": f"/api/v1/{PLURAL[facts.kind]}/{facts.name}",
    }


def promotion_payload(promotion: PromotionRequest) -> dict:
    """The request as the API shows it (load it with its asset, version, stage, requester, base version and
    reviews)."""
    return facts_payload(PromotionFacts.of(promotion))


def callback_body(promotion: PromotionRequest) -> bytes:
    """What a callback POSTs: the event type and the request as the API shows it, as JSON."""
    return json.dumps(
        {"type": f"promotion.{promotion.status}", "data": promotion_payload(promotion)}
    ).encode()
