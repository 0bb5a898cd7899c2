"""What a promotion requires and what stands now: the policies that apply, their combined requirements, the
facts the gates look at (for one version or many, one implementation), who may review, which approvals count.

Reads only; the rules themselves are pure functions in approvals/policy.py.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db.models import JSONField, OuterRef, Q, QuerySet, Subquery, Value, prefetch_related_objects

from accounts.models import GlobalRole, User
from approvals import policy as rules
from approvals.models import Decision, Policy, PromotionRequest, Review
from core.compiled import CompiledQuery
from core.exceptions import Forbidden
from core.web import format_number
from registry.content import DIGEST_NOT_GIVEN
from registry.models import (
    Asset,
    AssetGroupObjectPermission,
    AssetUserObjectPermission,
    AssetVersion,
    Evaluation,
    Stage,
    StageHistory,
    StagePointer,
)
from registry.permissions import CODENAMES, Role, granted_roles


def _most_specific_first(policy: Policy) -> tuple[bool, bool]:
    return (policy.asset_id is None, policy.kind == "")


def _applies(policy: Policy, asset: Asset, stage_id: int) -> bool:
    """The rule of policies_for, for policies already read (policies_for_many)."""
    return policy.stage_id == stage_id and (
        policy.asset_id == asset.pk or (policy.asset_id is None and policy.kind in (str(asset.kind), ""))
    )


def _applying_to(asset: Asset) -> Q:
    return Q(asset=asset) | Q(asset__isnull=True, kind=asset.kind) | Q(asset__isnull=True, kind="")


POLICY_COLUMNS = [field.attname for field in Policy._meta.concrete_fields]


def _policies_query(*, asset_id, kind, stage_id):
    """The policies that apply to asset → stage, one row per reviewer team (or one with no team)."""
    applying = Q(asset_id=asset_id) | Q(asset__isnull=True, kind=kind) | Q(asset__isnull=True, kind="")
    return (
        Policy.objects.filter(applying, stage_id=stage_id)
        .order_by("pk", "reviewer_teams__id")
        .values_list(*POLICY_COLUMNS, "reviewer_teams__id", "reviewer_teams__name")
    )


# Every decision reads them: one statement with the reviewer teams joined, its SQL compiled once per process.
_POLICIES = CompiledQuery(_policies_query)


def policies_for(asset: Asset, stage: Stage) -> list[Policy]:
    """Every policy that applies to asset → stage, the most specific first: the asset's, its kind's, all.
    One query; each policy's reviewer_teams come with it, as a prefetch would leave them."""
    policies: dict[int, Policy] = {}
    teams: dict[int, list[Group]] = defaultdict(list)
    count = len(POLICY_COLUMNS)
    pk = POLICY_COLUMNS.index("id")
    for row in _POLICIES.rows("applying", {}, asset_id=asset.pk, kind=str(asset.kind), stage_id=stage.pk):
        if row[pk] not in policies:
            policies[row[pk]] = Policy.from_db("default", POLICY_COLUMNS, row[:count])
        team_id, team_name = row[count:]
        if team_id is not None:
            teams[row[pk]].append(Group.from_db("default", ["id", "name"], [team_id, team_name]))
    for policy in policies.values():
        prefetched = policy.reviewer_teams.all()
        prefetched._result_cache, prefetched._prefetch_done = teams[policy.pk], True
        policy._prefetched_objects_cache = {"reviewer_teams": prefetched}
    return sorted(policies.values(), key=_most_specific_first)


_POLICIES_FOR_MANY = CompiledQuery(  # once per number of stages and of assets (core.compiled)
    lambda *, stages, assets: Policy.objects.filter(stage_id__in=stages).filter(
        Q(asset_id__in=assets) | Q(asset__isnull=True)
    )
)


def policies_for_many(promotions: list[PromotionRequest]) -> dict[int, list[Policy]]:
    """policies_for of each request (by its id), for a whole list in two queries (policies, their teams)."""
    if not promotions:
        return {}
    stages = sorted({p.stage_id for p in promotions})
    assets = sorted({p.asset_id for p in promotions})
    candidates = _POLICIES_FOR_MANY.objects("", {}, stages=stages, assets=assets)
    prefetch_related_objects(candidates, "reviewer_teams")
    return {
        promotion.pk: sorted(
            (policy for policy in candidates if _applies(policy, promotion.asset, promotion.stage_id)),
            key=_most_specific_first,
        )
        for promotion in promotions
    }


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


def requirements_for(
    promotion: PromotionRequest, policies: list[Policy] | None = None
) -> tuple[dict, Policy | None]:
    """The stricter of the request's policy snapshot and the stage's current policies (`policies`: what
    policies_for gives for the request, when the caller read it already in this transaction)."""
    if policies is None:
        policies = policies_for(promotion.asset, promotion.stage)
    return _requirements(promotion, policies), (policies[0] if policies else None)


def _requirements(promotion: PromotionRequest, policies: list[Policy]) -> dict:
    return rules.stricter(promotion.policy_snapshot, combined_requirements(policies))


# What a service has in hand, for the audit listeners it calls ---------------------------------------


@dataclass(frozen=True)
class InHand:
    """A promotion request as the service deciding it holds it (locked, saved, with its asset, version,
    stage, requester and base version loaded), and the policies that apply to it now (policies_for, read
    in the same transaction; None when the service did not need them)."""

    promotion: PromotionRequest
    policies: list[Policy] | None


_in_hand = threading.local()


@contextmanager
def in_hand(promotion: PromotionRequest, policies: list[Policy] | None) -> Iterator[None]:
    """While the block runs, promotion_in_hand(promotion.pk) answers with this request and its policies.

    A service wraps its audit_record calls in it, so that a listener called for the event (the e-mails of
    notifications, which sits above approvals) uses what the service read instead of reading it again. Only
    for the block: nothing outlives the call that the request's state could have moved on from.
    """
    previous = getattr(_in_hand, "value", None)
    _in_hand.value = InHand(promotion=promotion, policies=policies)
    try:
        yield
    finally:
        _in_hand.value = previous


def promotion_in_hand(promotion_id: int) -> InHand | None:
    """The request and its policies, when the service recording an event about it shares them (in_hand)."""
    held = getattr(_in_hand, "value", None)
    return held if held is not None and held.promotion.pk == promotion_id else None


# Facts the gates look at ----------------------------------------------------------------------------


# The facts' queries, compiled once per number of versions (core.compiled).
_LATEST_EVALUATION_METRICS = CompiledQuery(
    lambda *, ids: (
        AssetVersion.objects.filter(pk__in=ids)
        .annotate(
            latest=Subquery(
                Evaluation.objects.filter(version=OuterRef("pk")).order_by("-id").values("metrics")[:1],
                output_field=JSONField(),
            )
        )
        .values_list("pk", "latest")
    )
)
_CURRENT_STAGES = CompiledQuery(
    lambda *, ids: StagePointer.objects.filter(version_id__in=ids).values_list("version_id", "stage__name")
)
_PAST_STAGES = CompiledQuery(
    lambda *, ids: (
        StageHistory.objects.filter(version_id__in=ids).values_list("version_id", "stage__name").distinct()
    )
)


def version_facts_many(
    *, versions: list[AssetVersion], evaluation_metrics: dict[int, dict | None] | None = None
) -> dict[int, rules.Facts]:
    """What gates look at, per version id: metrics, the latest evaluation, the model card, the stages.

    Two queries (stage pointers, stage history) when evaluation_metrics gives each version's latest
    evaluation metrics (a list annotates them), three when it is left out and they are read here.
    """
    ids = sorted({version.pk for version in versions})
    if not ids:
        return {}
    if evaluation_metrics is None:
        evaluation_metrics = dict(_LATEST_EVALUATION_METRICS.rows("", {}, ids=ids))
    current: dict[int, set[str]] = defaultdict(set)
    past: dict[int, set[str]] = defaultdict(set)
    for version_id, stage in _CURRENT_STAGES.rows("", {}, ids=ids):
        current[version_id].add(stage)
    for version_id, stage in _PAST_STAGES.rows("", {}, ids=ids):
        past[version_id].add(stage)
    return {
        version.pk: _facts(version, evaluation_metrics.get(version.pk), current[version.pk], past[version.pk])
        for version in versions
    }


def _facts(version: AssetVersion, evaluation_metrics: dict | None, current: set, past: set) -> rules.Facts:
    return rules.Facts(
        version_metrics=version.metrics,
        evaluation_metrics=evaluation_metrics or {},
        model_card=version.model_card,
        current_stages=frozenset(current),
        past_stages=frozenset(past | current),
        digest_given=version.digest != DIGEST_NOT_GIVEN,
    )


def _latest_evaluation(*, version_id):
    return Evaluation.objects.filter(version_id=version_id).order_by("-id").values_list("metrics")


def _stages_of(*, version_id):
    """The stages the version is in ("current") and every stage it was moved to ("past"), one row each."""
    current = StagePointer.objects.filter(version_id=version_id).values_list("stage__name", Value("current"))
    past = StageHistory.objects.filter(version_id=version_id).values_list("stage__name", Value("past"))
    return current.union(past)


# A decision checks one version's gates: its facts in two statements, their SQL compiled once per process.
_LATEST_EVALUATION = CompiledQuery(_latest_evaluation)
_STAGES_OF = CompiledQuery(_stages_of)


def version_facts(version: AssetVersion) -> rules.Facts:
    """What gates look at for one version, as version_facts_many gives them (2 queries: the latest
    evaluation's metrics; the stages it is and has been in)."""
    latest = _LATEST_EVALUATION.first("latest", {}, version_id=version.pk)
    current, past = set(), set()
    for stage, when in _STAGES_OF.rows("stages", {}, version_id=version.pk):
        (current if when == "current" else past).add(stage)
    return _facts(version, latest[0] if latest else None, current, past)


def gate_results(promotion: PromotionRequest, requirements: dict) -> list[rules.GateResult]:
    return rules.evaluate(requirements["gates"], version_facts(promotion.version))


# Where a request stands now: one rule for the inbox and the promotion page ---------------------------


@dataclass(frozen=True)
class GateView:
    """One gate as a reviewer reads it: "auc ≥ 0.92", where the value comes from, the value, the verdict."""

    label: str
    source: str
    passed: bool
    actual: str | None

    @property
    def sentence(self) -> str:
        """ "auc ≥ 0.92 fails: 0.87" (or "… fails: no value")."""
        return f"{self.label} {'passes' if self.passed else 'fails'}: {self.actual or 'no value'}"


@dataclass(frozen=True)
class Standing:
    """A request's requirements as they count now (the stricter of its policy snapshot and the current
    policies), the policies that apply today (most specific first), and its gates checked against today's
    facts. What the inbox rows and the promotion page both show, from standing_many only."""

    requirements: dict
    policies: list[Policy]
    results: list[rules.GateResult]
    gates: list[GateView]

    @property
    def failing(self) -> list[GateView]:
        return [gate for gate in self.gates if not gate.passed]


SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}
SOURCES = {
    "latest_evaluation": "latest evaluation",
    "version": "the version's metrics",
    "any": "latest evaluation, else the version's metrics",
}


def gate_label(gate: dict) -> str:
    """A gate in a few words: "auc ≥ 0.92", "model card is not empty", "is or has been in staging"."""
    if gate["type"] == "metric":
        return f"{gate['metric']} {SYMBOLS[gate['op']]} {format_number(gate['value'])}"
    return rules.describe(gate)


def gate_view(result: rules.GateResult) -> GateView:
    gate, value = result.gate, result.actual
    if value is None:
        actual = None
    elif gate["type"] == "model_card":
        actual = f"{value} characters"
    elif gate["type"] == "digest":
        actual = "given" if value else DIGEST_NOT_GIVEN
    elif isinstance(value, list):
        actual = ", ".join(str(item) for item in value) or "in no stage"
    else:
        actual = format_number(value)
    source = SOURCES.get(gate.get("source", ""), "") if gate["type"] == "metric" else ""
    return GateView(label=gate_label(gate), source=source, passed=result.passed, actual=actual)


def standing_many(
    promotions: list[PromotionRequest], *, evaluation_metrics: dict[int, dict | None] | None = None
) -> dict[int, Standing]:
    """Each request's Standing by its id: policies (two queries) and gate facts (version_facts_many: two
    queries when evaluation_metrics gives the latest evaluation's metrics per version, three otherwise),
    whatever the number of requests, gates or evaluations. The services check the same gates with
    gate_results at decision time; this is what the pages show beforehand."""
    policies = policies_for_many(promotions)
    facts = version_facts_many(
        versions=list({p.version_id: p.version for p in promotions}.values()),
        evaluation_metrics=evaluation_metrics,
    )
    standings = {}
    combined: dict[tuple[int, ...], dict | None] = {}  # the same policies apply to many rows: combined once
    for promotion in promotions:
        applying = policies[promotion.pk]
        key = tuple(policy.pk for policy in applying)
        if key not in combined:
            combined[key] = combined_requirements(applying)
        requirements = rules.stricter(promotion.policy_snapshot, combined[key])
        results = rules.evaluate(requirements["gates"], facts[promotion.version_id])
        standings[promotion.pk] = Standing(
            requirements=requirements,
            policies=policies[promotion.pk],
            results=results,
            gates=[gate_view(result) for result in results],
        )
    return standings


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
    """Approvals that count now: one per person, from people who are still eligible (review_refusal's
    rules, asked of every reviewer at once by eligible_reviewers: one query, whatever the approvals)."""
    eligible = eligible_reviewers(promotion, requirements).values("pk")
    approvals = promotion.reviews.filter(decision=Decision.APPROVE, reviewer__in=eligible)
    return list(approvals.select_related("reviewer"))


def eligible_reviewers(promotion: PromotionRequest, requirements: dict) -> QuerySet[User]:
    """The people review_refusal lets review this request now, as one query (subqueries, no join that
    repeats a person): active people, not auditors, holding the review role on the asset directly or
    through a team, in one of the policy's teams if it names some, neither the requester nor (unless the
    policy allows it) the version's author. tests/approvals/test_decision_page.py checks that it agrees
    with review_refusal person by person."""
    return eligible_reviewers_query(**eligible_reviewers_values(promotion, requirements))


def eligible_reviewers_values(promotion: PromotionRequest, requirements: dict) -> dict:
    """What eligible_reviewers_query takes for this request: the asset, the requester, the author when the
    policy excludes them, the policy's teams (a list, maybe empty)."""
    values = {
        "asset_id": promotion.asset_id,
        "requester_id": promotion.requested_by_id,
        "teams": list(requirements["reviewer_teams"]),
    }
    if not requirements["allow_author_approval"] and promotion.version.created_by_id is not None:
        values["author_id"] = promotion.version.created_by_id
    return values


def eligible_reviewers_query(
    *, asset_id: int, requester_id: int, teams: list[int], author_id: int | None = None
) -> QuerySet[User]:
    """eligible_reviewers from plain values (for core.compiled: one shape per author excluded or not and
    number of teams)."""
    codename = CODENAMES[Role.REVIEW]
    direct = AssetUserObjectPermission.objects.filter(
        content_object_id=asset_id, permission__codename=codename
    ).values("user_id")
    granted_teams = AssetGroupObjectPermission.objects.filter(
        content_object_id=asset_id, permission__codename=codename
    ).values("group_id")
    memberships = User.groups.through.objects
    people = (
        User.objects.filter(is_active=True, is_service_account=False)
        .exclude(global_role=GlobalRole.AUDITOR)
        .filter(Q(pk__in=direct) | Q(pk__in=memberships.filter(group_id__in=granted_teams).values("user_id")))
        .exclude(pk=requester_id)
    )
    if author_id is not None:
        people = people.exclude(pk=author_id)
    if teams:
        members = memberships.filter(group_id__in=teams).values("user_id")
        people = people.filter(pk__in=members)
    return people
