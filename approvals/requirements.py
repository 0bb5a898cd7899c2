"""What a promotion requires and what stands now: the policies that apply, their combined requirements, the
facts the gates look at (for one version or many, one implementation), who may review, which approvals count.

Reads only; the rules themselves are pure functions in approvals/policy.py.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import JSONField, OuterRef, Q, Subquery

from approvals import policy as rules
from approvals.models import Decision, Policy, PromotionRequest, Review
from core.exceptions import Forbidden
from registry.models import Asset, AssetVersion, Evaluation, Stage, StageHistory, StagePointer
from registry.permissions import Role, granted_roles


def _applying_to(asset: Asset) -> Q:
    return Q(asset=asset) | Q(asset__isnull=True, kind=asset.kind) | Q(asset__isnull=True, kind="")


def _most_specific_first(policy: Policy) -> tuple[bool, bool]:
    return (policy.asset_id is None, policy.kind == "")


def policies_for(asset: Asset, stage: Stage) -> list[Policy]:
    """Every policy that applies to asset → stage, the most specific first: the asset's, its kind's, all."""
    candidates = Policy.objects.filter(stage=stage).filter(_applying_to(asset))
    return sorted(candidates.prefetch_related("reviewer_teams"), key=_most_specific_first)


def policies_by_stage(asset: Asset) -> dict[Stage, list[Policy]]:
    """The policies that apply to asset, most specific first, for each stage that has one, in stage order
    (two queries: the policies with their stages and assets, their reviewer teams; one when there is none)."""
    by_stage: dict[Stage, list[Policy]] = defaultdict(list)
    policies = (
        Policy.objects.filter(_applying_to(asset))
        .select_related("stage", "asset")
        .prefetch_related("reviewer_teams")
    )
    for policy in policies:
        by_stage[policy.stage].append(policy)
    return {
        stage: sorted(by_stage[stage], key=_most_specific_first)
        for stage in sorted(by_stage, key=lambda stage: stage.order)
    }


def combined_requirements(policies: list[Policy]) -> dict | None:
    """All applicable policies at once, each only adding to the others: an asset's own policy can make
    promotion harder than the organisation's policy for all assets, never easier."""
    combined = None
    for policy in reversed(policies):  # most specific last, so its id is the one recorded
        snap = rules.snapshot(policy)
        combined = snap if combined is None else rules.stricter(combined, snap)
    return combined


def requirements_for(promotion: PromotionRequest) -> tuple[dict, Policy | None]:
    """The stricter of the request's policy snapshot and the stage's current policies."""
    policies = policies_for(promotion.asset, promotion.stage)
    current = combined_requirements(policies)
    return rules.stricter(promotion.policy_snapshot, current), (policies[0] if policies else None)


# Facts the gates look at ----------------------------------------------------------------------------


def version_facts_many(
    *, versions: list[AssetVersion], evaluation_metrics: dict[int, dict | None] | None = None
) -> dict[int, rules.Facts]:
    """What gates look at, per version id: metrics, the latest evaluation, the model card, the stages.

    Two queries (stage pointers, stage history) when evaluation_metrics gives each version's latest
    evaluation metrics (a list annotates them), three when it is left out and they are read here.
    """
    ids = {version.pk for version in versions}
    if evaluation_metrics is None:
        latest = Evaluation.objects.filter(version=OuterRef("pk")).order_by("-id").values("metrics")[:1]
        evaluation_metrics = dict(
            AssetVersion.objects.filter(pk__in=ids)
            .annotate(latest=Subquery(latest, output_field=JSONField()))
            .values_list("pk", "latest")
        )
    current: dict[int, set[str]] = defaultdict(set)
    past: dict[int, set[str]] = defaultdict(set)
    pointers = StagePointer.objects.filter(version_id__in=ids).values_list("version_id", "stage__name")
    history = StageHistory.objects.filter(version_id__in=ids).values_list("version_id", "stage__name")
    for version_id, stage in pointers:
        current[version_id].add(stage)
    for version_id, stage in history.distinct():
        past[version_id].add(stage)
    return {
        version.pk: rules.Facts(
            version_metrics=version.metrics,
            evaluation_metrics=evaluation_metrics.get(version.pk) or {},
            model_card=version.model_card,
            current_stages=frozenset(current[version.pk]),
            past_stages=frozenset(past[version.pk] | current[version.pk]),
        )
        for version in versions
    }


def version_facts(version: AssetVersion) -> rules.Facts:
    """What gates look at for one version (3 queries)."""
    return version_facts_many(versions=[version])[version.pk]


def gate_results(promotion: PromotionRequest, requirements: dict) -> list[rules.GateResult]:
    return rules.evaluate(requirements["gates"], version_facts(promotion.version))


# Reviewers and approvals ----------------------------------------------------------------------------


def review_refusal(user, promotion: PromotionRequest, requirements: dict) -> Forbidden | None:
    """Why user may not review this request now, or None. Checked live, at every decision and count."""
    if not user.is_active:
        return Forbidden(f"{user} is disabled.", type="not-an-eligible-reviewer")
    if user.is_service_account:
        return Forbidden("Service accounts never review promotions.", type="service-account-cannot-review")
    if user.pk == promotion.requested_by_id:
        return Forbidden(
            "You requested this promotion; someone else must review it.", type="self-approval-forbidden"
        )
    if user.pk == promotion.version.created_by_id and not requirements["allow_author_approval"]:
        return Forbidden(
            "You registered this version; the policy does not let its author review it.",
            type="author-approval-forbidden",
        )
    # Only an explicit grant counts: neither the admin role nor superuser status makes a reviewer.
    if Role.REVIEW not in granted_roles(user, promotion.asset):
        return Forbidden(
            f"You do not hold the review role on {promotion.asset}.", type="not-an-eligible-reviewer"
        )
    teams = set(requirements["reviewer_teams"])
    if teams and not teams & set(user.groups.values_list("pk", flat=True)):
        return Forbidden("The policy asks for reviewers from other teams.", type="not-an-eligible-reviewer")
    return None


def counted_approvals(promotion: PromotionRequest, requirements: dict) -> list[Review]:
    """Approvals that count now: one per person, from people who are still eligible."""
    approvals = promotion.reviews.filter(decision=Decision.APPROVE).select_related("reviewer")
    return [
        review for review in approvals if review_refusal(review.reviewer, promotion, requirements) is None
    ]
