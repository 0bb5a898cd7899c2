"""Reads of promotions and policies, filtered to what the caller may see."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import (
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    JSONField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Window,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.permissions import can_ever_review, reads_everything
from approvals import policy as rules
from approvals import requirements
from approvals.filters import PromotionFilter
from approvals.models import OPEN_STATUSES, Decision, Policy, PromotionRequest, Review, Status
from approvals.payloads import PromotionFacts, ReviewFacts
from audit.models import AuditEvent
from core.compiled import CompiledQuery
from core.exceptions import NotFound
from registry import event_text
from registry.models import (
    Asset,
    AssetGroupObjectPermission,
    AssetUserObjectPermission,
    AssetVersion,
    Evaluation,
    Stage,
    StagePointer,
)
from registry.permissions import CODENAMES, Role, restrict, restrict_few
from registry.selectors import visible_asset_names


def promotion_list_for_user(*, user) -> QuerySet[PromotionRequest]:
    return restrict(_promotions(), user, field="asset")


def _promotions() -> QuerySet[PromotionRequest]:
    return _promotion_with_relations().prefetch_related(_reviews())


def _promotion_with_relations() -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.select_related(
        "asset", "version", "stage", "requested_by", "base_version"
    )


def _reviews() -> Prefetch:
    return Prefetch("reviews", queryset=Review.objects.select_related("reviewer").order_by("id"))


_PROMOTION = CompiledQuery(
    lambda *, user, pk: restrict_few(_promotion_with_relations().filter(pk=pk), user, field="asset").order_by(
        "pk"
    )
)
_LARGEST_ID = 2**63 - 1  # BigAutoField


def promotion_get_for_user(*, user, pk: int) -> PromotionRequest:
    """The request if user may see it (else NotFound), as it stands now: one whose time has run out reads as
    expired, with the reason and revision its recorded expiry will have. Nothing is written here: the
    periodic task and the decision services record the expiry.

    CI polls this: the request's query is compiled once per shape (core.compiled), its reviews follow."""
    if not user.is_authenticated or not 0 < pk <= _LARGEST_ID:
        raise NotFound("Not found.")
    found = _PROMOTION.objects("all" if reads_everything(user) else "granted", {"user": user}, limit=1, pk=pk)
    if not found:
        raise NotFound("Not found.")
    promotion = found[0]
    prefetch_related_objects([promotion], _reviews())
    return _as_it_stands(promotion)


def _as_it_stands(promotion):
    """A request (a PromotionRequest or its PromotionFacts) whose time has run out reads as expired."""
    if rules.is_due(promotion.status, promotion.expires_at, timezone.now()):
        promotion.status = Status.EXPIRED
        promotion.status_reason = rules.expiry_reason(promotion.expires_at)
        promotion.revision += 1
    return promotion


# CI's poll: the columns of the answer (PromotionFacts' fields but the reviews) and each review's, one row per
# review (or one row without any), in one statement.
_POLL_COLUMNS = {
    "id": "id",
    "status": "status",
    "status_reason": "status_reason",
    "revision": "revision",
    "kind": "asset__kind",
    "name": "asset__name",
    "version": "version__number",
    "digest": "version__digest",
    "stage": "stage__name",
    "base_version": "base_version__number",
    "rollback": "rollback",
    "justification": "justification",
    "ci": "ci",
    "callback_url": "callback_url",
    "requested_by": "requested_by__username",
    "policy_snapshot": "policy_snapshot",
    "superseded_by": "superseded_by_id",
    "created_at": "created_at",
    "expires_at": "expires_at",
    "decided_at": "decided_at",
    "applied_at": "applied_at",
}
_REVIEW_COLUMNS = ("reviews__id", "reviews__reviewer__username", "reviews__decision", "reviews__comment")
_REVIEW_COLUMNS += ("reviews__created_at",)


def _poll_query(*, user, pk: int) -> QuerySet:
    promotion = restrict_few(PromotionRequest.objects.filter(pk=pk), user, field="asset")
    return promotion.order_by("reviews__id").values_list(*_POLL_COLUMNS.values(), *_REVIEW_COLUMNS)


_POLL = CompiledQuery(_poll_query)


def promotion_poll_for_user(*, user, pk: int) -> PromotionFacts:
    """What GET /api/v1/promotions/<id> answers (CI polls it), if user may see the request (else NotFound),
    as it stands now (see promotion_get_for_user): the request's columns and its reviews' in one statement,
    compiled once per shape (core.compiled), read as plain values, no model instances."""
    if not user.is_authenticated or not 0 < pk <= _LARGEST_ID:
        raise NotFound("Not found.")
    rows = _POLL.rows("all" if reads_everything(user) else "granted", {"user": user}, pk=pk)
    if not rows:
        raise NotFound("Not found.")
    width = len(_POLL_COLUMNS)
    facts = PromotionFacts(
        **dict(zip(_POLL_COLUMNS, rows[0][:width], strict=True)),
        reviews=[ReviewFacts(*row[width + 1 :]) for row in rows if row[width] is not None],
    )
    return _as_it_stands(facts)


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


def policy_page_list_for_user(*, user) -> QuerySet[Policy]:
    """Policies user may read, for the policies page: global ones first, then by asset and stage."""
    return (
        policy_list_for_user(user=user)
        .select_related("created_by")
        .order_by(F("asset_id").asc(nulls_first=True), "kind", "stage__order", "pk")
    )


# Reviewer pages -----------------------------------------------------------------------------------


def _review_grants(user) -> Q:
    """Rows whose asset user holds an explicit review grant on, directly or through a team (subqueries).

    Only an explicit grant makes a reviewer (requirements.review_refusal): no global role counts here.
    """
    # The review permission's id once (an uncorrelated subquery), the person's teams as a list of ids.
    review = Permission.objects.filter(
        codename=CODENAMES[Role.REVIEW], content_type__app_label="registry", content_type__model="asset"
    ).values("pk")[:1]
    my_teams = get_user_model().groups.through.objects.filter(user_id=user.pk).values("group_id")
    direct = AssetUserObjectPermission.objects.filter(user=user, permission_id=Subquery(review))
    teams = AssetGroupObjectPermission.objects.filter(group_id__in=my_teams, permission_id=Subquery(review))
    # One EXISTS over both kinds of grant, asked of each (pending, so few) row through the grants' asset
    # index: as two IN lists the database would first hash every asset a reviewer's teams may review.
    mine = direct.filter(content_object_id=OuterRef("asset_id")).values("content_object_id")
    ours = teams.filter(content_object_id=OuterRef("asset_id")).values("content_object_id")
    return Q(Exists(mine.union(ours, all=True)))


def _for_rows(promotions: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    """Promotion rows for a list page: approvals so far and the latest evaluation's metrics as subqueries."""
    approvals = (
        Review.objects.filter(promotion=OuterRef("pk"), decision=Decision.APPROVE)
        .order_by()
        .values("promotion")
        .annotate(count=Count("pk"))
        .values("count")
    )
    latest_evaluation = (
        Evaluation.objects.filter(version=OuterRef("version_id")).order_by("-id").values("metrics")[:1]
    )
    return (
        promotions.prefetch_related(None)
        # A row shows the version's number and checks its gates (metrics, model card); the replaced version
        # shows its number. The rest of their columns (large JSON and text) is neither read nor decoded.
        .defer(
            *(f"version__{name}" for name in _ROW_UNUSED), *(f"base_version__{name}" for name in _ROW_UNUSED)
        )
        .defer("base_version__metrics", "base_version__model_card")
        .annotate(
            approvals_so_far=Coalesce(Subquery(approvals, output_field=IntegerField()), 0),
            latest_evaluation_metrics=Subquery(latest_evaluation, output_field=JSONField()),
        )
    )


# The version columns a promotion row never reads.
_ROW_UNUSED = (
    "description",
    "tags",
    "uri",
    "metadata",
    "params",
    "signature",
    "template",
    "variables",
    "model_config",
    "commit_message",
    "schema",
)


def _awaiting_review(user, now=None) -> QuerySet[PromotionRequest]:
    """The inbox's rule (promotion_inbox_for_user) without what a list shows: for counting. A review grant
    is a grant, and any grant makes its asset visible (registry.permissions): no other visibility check is
    needed (nor wanted: each costs the database a hash of every asset the person sees)."""
    reviewed = Review.objects.filter(promotion=OuterRef("pk"), reviewer=user)
    pending = PromotionRequest.objects.filter(status=Status.PENDING, expires_at__gt=now or timezone.now())
    return pending.filter(_review_grants(user)).exclude(requested_by=user).exclude(Exists(reviewed))


# What a promotion row shows of its request's relations (one join each).
_ROW_RELATED = ("asset", "version", "stage", "requested_by", "base_version")


def promotion_inbox_for_user(*, user) -> QuerySet[PromotionRequest]:
    """Pending requests that wait for user's review: an explicit review grant on the asset (directly or
    through a team), not requested by user, not yet reviewed by user, not past their expiry; oldest first.

    One query whatever the number of rows. The promotion page and the services check every rule again
    (requirements.review_refusal): this list is where to look, not a permission.
    """
    return _for_rows(_inbox(user)).order_by("created_at", "pk")


def _inbox_head_query(*, user, now, limit: int) -> QuerySet[PromotionRequest]:
    # Sorted and cut on the request's own columns first (ids only), then only those rows are joined to
    # their wide relations (model cards, metrics, descriptions): sorting every waiting row with them cost
    # more than finding them. The count of all waiting rows is a subquery of the same rule.
    waiting = _awaiting_review(user, now=now).order_by()
    head = waiting.order_by("created_at", "pk").values("pk")[:limit]
    total = waiting.values(count=Func(F("pk"), function="COUNT", output_field=IntegerField()))
    rows = PromotionRequest.objects.filter(pk__in=head).select_related(*_ROW_RELATED)
    return _for_rows(rows).annotate(waiting_total=Subquery(total)).order_by("created_at", "pk")


_INBOX_HEAD = CompiledQuery(_inbox_head_query)


def promotion_inbox_head_for_user(*, user, limit: int) -> tuple[list[PromotionRequest], int]:
    """The `limit` oldest requests waiting for user's review and how many wait in all, in one query (the
    count is a window over the same rows, taken before the limit). The inbox's first query: compiled once
    per shape (core.compiled)."""
    if not user.is_authenticated or not can_ever_review(user):
        return [], 0
    shape = ("all" if reads_everything(user) else "granted", limit)
    head = _INBOX_HEAD.objects(shape, {"user": user, "limit": limit}, now=timezone.now())
    return head, (head[0].waiting_total if head else 0)


def _inbox(user) -> QuerySet[PromotionRequest]:
    if not user.is_authenticated or not can_ever_review(user):
        return PromotionRequest.objects.none()
    return _awaiting_review(user).select_related(*_ROW_RELATED)


def _inbox_count_query(*, user, now) -> QuerySet:
    # The count as a window over the waiting rows, read from the first: no row, none waiting.
    waiting = _awaiting_review(user, now=now).order_by()
    return waiting.annotate(waiting_total=Window(Count("pk"))).values_list("waiting_total")


_INBOX_COUNT = CompiledQuery(_inbox_count_query)


def promotion_inbox_count_for_user(*, user) -> int:
    """How many requests wait for user's review (the inbox's rule): one query, compiled once per shape
    (the header's badge asks on every page), none for those who never review (anonymous visitors, service
    accounts, auditors)."""
    if not user.is_authenticated or not can_ever_review(user):
        return 0
    shape = "all" if reads_everything(user) else "granted"
    row = _INBOX_COUNT.first(shape, {"user": user}, now=timezone.now())
    return row[0] if row else 0


def _concerning(user) -> QuerySet[PromotionRequest]:
    """The requests that concern user as a requester (promotion_requests_of_user), on assets user may see."""
    memberships = get_user_model().groups.through.objects
    my_teams = memberships.filter(user_id=user.pk).values("group_id")
    team_accounts = memberships.filter(group_id__in=my_teams, user__is_service_account=True).values("user_id")
    codename = CODENAMES[Role.MANAGE]
    managed_directly = AssetUserObjectPermission.objects.filter(user=user, permission__codename=codename)
    managed_by_team = AssetGroupObjectPermission.objects.filter(
        group_id__in=my_teams, permission__codename=codename
    )
    concerning = (
        Q(requested_by=user)
        | Q(requested_by_id__in=team_accounts)
        | Q(asset_id__in=managed_directly.values("content_object_id"))
        | Q(asset_id__in=managed_by_team.values("content_object_id"))
    )
    return restrict(PromotionRequest.objects.filter(concerning), user, field="asset")


def promotion_requests_of_user(*, user) -> QuerySet[PromotionRequest]:
    """Requests that concern user as a requester, on assets user may still see, newest first (one query):
    those user made, those made by the service accounts of user's teams, and those on assets user manages
    (the manage role granted explicitly, directly or through a team; the admin role does not count)."""
    return _for_rows(_mine(user)).order_by("-created_at", "-pk")


def _mine(user) -> QuerySet[PromotionRequest]:
    if not user.is_authenticated:
        return PromotionRequest.objects.none()
    return _concerning(user).select_related(*_ROW_RELATED)


def _mine_head_query(*, user, limit: int) -> QuerySet[PromotionRequest]:
    # As the inbox's head: the newest ids first, then only those rows with their relations.
    head = _concerning(user).order_by("-created_at", "-pk").values("pk")[:limit]
    rows = PromotionRequest.objects.filter(pk__in=head).select_related(*_ROW_RELATED)
    return _for_rows(rows).order_by("-created_at", "-pk")


_MINE = CompiledQuery(_mine_head_query)


def promotion_requests_head_for_user(*, user, limit: int) -> list[PromotionRequest]:
    """The newest `limit` of promotion_requests_of_user, compiled once per shape (core.compiled)."""
    if not user.is_authenticated:
        return []
    shape = ("all" if reads_everything(user) else "granted", limit)
    return _MINE.objects(shape, {"user": user, "limit": limit})


# The promotions list's `show` choices besides every request the reader may see.
SHOW_WAITING = "waiting"  # the inbox's "Waiting for me", oldest first
SHOW_MINE = "mine"  # the inbox's "My requests", newest first


def promotion_search_for_user(*, user, filters: dict, show: str = "") -> QuerySet[PromotionRequest]:
    """Every request user may see (or, with `show`, those waiting for user's review or concerning user as
    the inbox lists them), filtered as the API's list is (approvals.filters.PromotionFilter), newest first
    (waiting ones oldest first), ready for promotion_rows. One query for the rows (and one to count them)."""
    data = dict(filters)
    if isinstance(data.get("status"), str):
        data["status"] = [data["status"]]  # the API's filter takes several
    if show == SHOW_WAITING:
        base, order = _inbox(user), ("created_at", "pk")
    elif show == SHOW_MINE:
        base, order = _mine(user), ("-created_at", "-pk")
    else:
        base, order = promotion_list_for_user(user=user), ("-created_at", "-pk")
    return _for_rows(PromotionFilter(data, queryset=base).qs).order_by(*order)


@dataclass(frozen=True)
class PromotionRow:
    """One line of a promotion list: the request, its gates as checked now, its approvals so far."""

    promotion: PromotionRequest
    gates_passed: int
    gates_failed: int
    failing: list[requirements.GateView]
    approvals: int
    required: int


def promotion_rows(*, promotions: list[PromotionRequest]) -> list[PromotionRow]:
    """Rows for requests from _for_rows, in four queries in all. Gates and the approvals needed come from
    requirements.standing_many, the one rule the promotion page shows too: the stricter of the request's
    policy snapshot and today's policies, checked against today's facts."""
    standings = requirements.standing_many(
        promotions, evaluation_metrics={p.version_id: p.latest_evaluation_metrics for p in promotions}
    )
    rows = []
    for promotion in promotions:
        standing = standings[promotion.pk]
        failing = standing.failing
        rows.append(
            PromotionRow(
                promotion=promotion,
                gates_passed=len(standing.gates) - len(failing),
                gates_failed=len(failing),
                failing=failing,
                approvals=promotion.approvals_so_far,
                required=standing.requirements["required_approvals"],
            )
        )
    return rows


# Reviewers named on the promotion page; beyond that many, it counts them ("members of team X (N people)").
NAMED_REVIEWERS = 8


# The eligible people (requirements.eligible_reviewers) asked two ways, each compiled once per shape: which
# of the approvers still are, and the first of them by name with how many there are in all (a window count).
_ELIGIBLE_AMONG = CompiledQuery(
    lambda *, approvers, **eligible: (
        requirements.eligible_reviewers_query(**eligible)
        .filter(pk__in=approvers)
        .order_by()
        .values_list("pk")
    )
)
_ELIGIBLE_NAMED = CompiledQuery(
    lambda **eligible: (
        requirements.eligible_reviewers_query(**eligible)
        .annotate(total=Window(Count("pk")))
        .order_by("username")
        .values_list("pk", "username", "total")
    )
)


@dataclass
class Deciders:
    """Who decides a request: the policy's team names, the eligible people (named when few, `total` always),
    which recorded approvals count now, and those that do not (their author is no longer eligible)."""

    team_names: list[str]
    people: list[dict]  # {"name", "review" (theirs or None), "counts"}; empty when more than NAMED_REVIEWERS
    total: int
    counted_ids: set[int]
    not_counted: list[Review]


def promotion_deciders(
    *, promotion: PromotionRequest, needs: dict, reviews: list[Review], policies: list[Policy]
) -> Deciders:
    """Deciders of one request under its live requirements (`needs`), in at most three queries whatever the
    number of reviewers or reviews: the names of teams the current policies (their teams prefetched) do not
    name, approvers still eligible, the first eligible people with how many there are (a window over the
    same rows). A final request keeps its record: no one is eligible any more, and its reviews are what
    counted when it was decided."""
    known = {team.pk: team.name for policy in policies for team in policy.reviewer_teams.all()}
    teams = [pk for pk in needs["reviewer_teams"] if pk > 0]
    missing = [pk for pk in teams if pk not in known]
    if missing:
        known.update(Group.objects.filter(pk__in=missing).values_list("pk", "name"))
    team_names = sorted(known[pk] for pk in teams if pk in known)
    if not promotion.is_open:
        return Deciders(team_names, [], 0, set(), [])
    eligible = requirements.eligible_reviewers_values(promotion, needs)
    shape = "author_id" in eligible  # whether the author is left out
    approvals = [review for review in reviews if review.decision == Decision.APPROVE]
    counted: set[int] = set()
    if approvals:
        approvers = [review.reviewer_id for review in approvals]
        counted = {pk for (pk,) in _ELIGIBLE_AMONG.rows(shape, {}, approvers=approvers, **eligible)}
    named = _ELIGIBLE_NAMED.rows(shape, {}, limit=NAMED_REVIEWERS + 1, **eligible)
    total = named[0][2] if named else 0
    decided = {review.reviewer_id: review for review in reviews}
    people = []
    if len(named) <= NAMED_REVIEWERS:
        people = [{"name": name, "review": decided.get(pk), "counts": pk in counted} for pk, name, _ in named]
    not_counted = [review for review in approvals if review.reviewer_id not in counted]
    return Deciders(team_names, people, total, counted, not_counted)


FEW_ASSETS = 200


_ACTIVITY_FIELDS = (
    *("seq", "occurred_at", "actor_repr", "actor_kind", "action", "target_kind", "target_id"),
    *("target_repr", "asset_id", "changes"),
)
_VISIBLE_ASSET_IDS = CompiledQuery(lambda *, user: restrict(Asset.objects.all(), user).values_list("pk"))
_LATEST_VISIBLE_EVENTS = CompiledQuery(
    lambda *, user: restrict(
        AuditEvent.objects.only(*_ACTIVITY_FIELDS).filter(asset_id__isnull=False).order_by("-seq"),
        user,
        field="asset_id",
    )
)


def _latest_events_on_visible_assets(*, user, limit: int) -> list[AuditEvent]:
    # Both queries of those who see many assets are compiled once per shape (core.compiled).
    shape = "all" if reads_everything(user) else "granted"
    if shape == "granted":
        visible = [pk for (pk,) in _VISIBLE_ASSET_IDS.rows(shape, {"user": user}, limit=FEW_ASSETS + 1)]
        if len(visible) <= FEW_ASSETS:
            events = AuditEvent.objects.only(*_ACTIVITY_FIELDS).order_by("-seq")
            return list(events.filter(asset_id__in=visible)[:limit]) if visible else []
    return _LATEST_VISIBLE_EVENTS.objects(shape, {"user": user}, limit=limit)


def activity_list_for_user(*, user, limit: int = 20) -> list[AuditEvent]:
    """The latest audit events about assets user may see, each with a `summary` (at most three queries).

    Walking the log backwards and keeping visible events is quick when the user sees many (active) assets,
    but reads the whole log for someone who sees a few quiet ones. So for up to FEW_ASSETS visible assets the
    events are read through the (asset_id, seq) index of just those assets instead.

    An event's own asset is visible, but what it records may name others (lineage parents, an evaluation's
    dataset): the summary names those only if user may see them, asked in one query for the whole list.
    """
    listed = _latest_events_on_visible_assets(user=user, limit=limit)
    names = visible_asset_names(user=user, references=event_text.all_references(listed))
    for event in listed:
        event.summary = event_text.summary(event, visible=names)
    return listed


def promotion_history(*, promotion: PromotionRequest) -> list[AuditEvent]:
    """The audit events of one request, oldest first (one query). The caller has checked visibility."""
    events = AuditEvent.objects.filter(
        target_kind=PromotionRequest._meta.label_lower, target_id=str(promotion.pk)
    ).order_by("seq")
    return list(events.only("seq", "occurred_at", "actor_repr", "actor_kind", "action", "source", "changes"))


def base_version_for(*, promotion: PromotionRequest) -> AssetVersion | None:
    """What the candidate would replace: the request's base version, else what is in the stage now (not
    the candidate itself, which is what an applied request into an empty stage finds there)."""
    if promotion.base_version_id:
        return promotion.base_version
    pointer = (
        StagePointer.objects.filter(asset_id=promotion.asset_id, stage_id=promotion.stage_id)
        .exclude(version_id=promotion.version_id)
        .select_related("version")
        .first()
    )
    return pointer.version if pointer else None


@dataclass(frozen=True)
class Baseline:
    """What the promotion page compares the candidate with, and why that version."""

    version: AssetVersion | None
    stage: Stage | None  # where that version is (or was, for a final request)
    in_target: bool  # it is what the target stage holds (today, or when the request was made)
    sentence: str  # "against v2, in production today"


def comparison_baseline(*, promotion: PromotionRequest) -> Baseline:
    """The version a reviewer should compare the candidate with (one query).

    An open request: what the target stage holds today; when it is empty, the version in the nearest
    earlier stage (e.g. staging for production) other than the candidate, so that "what changes" still has
    an answer. A final request: what it replaced (or would have), as recorded when it was made.
    """
    target = promotion.stage
    if not promotion.is_open:
        base = base_version_for(promotion=promotion)
        if base is None:
            return Baseline(None, None, True, f"nothing was in {target.name}")
        return Baseline(base, target, True, f"against v{base.number}, in {target.name} when requested")
    pointer = (
        StagePointer.objects.filter(asset_id=promotion.asset_id, stage__order__lte=target.order)
        .exclude(version_id=promotion.version_id)
        .select_related("version", "stage")
        .order_by("-stage__order")
        .first()
    )
    if pointer is None:
        return Baseline(None, None, True, f"nothing in {target.name} or an earlier stage to compare with")
    number = pointer.version.number
    if pointer.stage_id == target.pk:
        return Baseline(pointer.version, target, True, f"against v{number}, in {target.name} today")
    return Baseline(
        pointer.version,
        pointer.stage,
        False,
        f"nothing in {target.name}; against v{number} in {pointer.stage.name}",
    )


ASSET_OPEN_LIMIT = 50


def asset_promotions(*, asset: Asset, recent: int) -> tuple[list[PromotionRequest], list[PromotionRequest]]:
    """The asset's open requests and its latest `recent` decided ones, newest first (two queries; the caller
    has checked that the asset is visible). An open request whose time has run out reads as expired and is
    listed with the decided ones (nothing is written here)."""
    rows = (
        PromotionRequest.objects.filter(asset=asset)
        .select_related("version", "stage", "requested_by", "base_version")
        .order_by("-pk")
    )
    open_rows = list(rows.filter(status__in=OPEN_STATUSES)[:ASSET_OPEN_LIMIT])
    decided = list(rows.exclude(status__in=OPEN_STATUSES)[:recent])
    now = timezone.now()
    for promotion in open_rows:
        if rules.is_due(promotion.status, promotion.expires_at, now):
            promotion.status = Status.EXPIRED
            promotion.status_reason = rules.expiry_reason(promotion.expires_at)
    still_open = [promotion for promotion in open_rows if promotion.status in OPEN_STATUSES]
    expired = [promotion for promotion in open_rows if promotion.status not in OPEN_STATUSES]
    decided = sorted([*expired, *decided], key=lambda promotion: -promotion.pk)[:recent]
    return still_open, decided
