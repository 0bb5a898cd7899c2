"""Reads of promotions and policies, filtered to what the caller may see."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from approvals.models import Policy, PromotionRequest, Review
from approvals.services import promotion_expire_if_due
from core.exceptions import NotFound
from core.source import Source
from registry.permissions import restrict


def promotion_list_for_user(*, user) -> QuerySet[PromotionRequest]:
    promotions = PromotionRequest.objects.select_related(
        "asset", "version", "stage", "requested_by", "base_version"
    ).prefetch_related(Prefetch("reviews", queryset=Review.objects.select_related("reviewer").order_by("id")))
    return restrict(promotions, user, field="asset")


def promotion_get_for_user(*, user, pk: int, source: Source) -> PromotionRequest:
    """The request if user may see it (else NotFound); an expiry that is due is recorded first."""
    promotion = promotion_list_for_user(user=user).filter(pk=pk).first()
    if promotion is None:
        raise NotFound("Not found.")
    if promotion.is_open and promotion.expires_at <= timezone.now():
        promotion_expire_if_due(promotion_id=promotion.pk, source=source)
        promotion = promotion_list_for_user(user=user).get(pk=pk)
    return promotion


def policy_list_for_user(*, user) -> QuerySet[Policy]:
    """Policies for assets user may see, plus the policies for many assets (everyone may read those)."""
    policies = Policy.objects.select_related("asset", "stage").prefetch_related("reviewer_teams")
    if not user.is_authenticated:
        return policies.none()
    scoped = restrict(policies.filter(asset__isnull=False), user, field="asset")
    return policies.filter(Q(asset__isnull=True) | Q(pk__in=scoped.values("pk"))).order_by("id")


def policy_get_for_user(*, user, pk: int) -> Policy:
    policy = policy_list_for_user(user=user).filter(pk=pk).first()
    if policy is None:
        raise NotFound("Not found.")
    return policy
