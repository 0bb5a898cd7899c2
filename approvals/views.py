"""Reviewer pages: the inbox, the promotions list and the promotion page. A thin adapter over the same
selectors and services as the API (approvals/api/views.py): visibility from the selectors, every rule and
refusal from the services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.views.decorators.http import require_GET, require_POST

from approvals import selectors, services
from approvals.forms import ApproveForm, CancelForm, PromotionFilterForm, RejectForm
from approvals.models import OPEN_STATUSES, Decision, PromotionRequest, Status
from approvals.requirements import gate_label, review_refusal, standing_many
from core.exceptions import DomainError
from core.web import format_number, page_errors, paginate, web_link, web_source
from registry import compare
from registry.models import Stage
from registry.permissions import Role, effective_roles
from registry.selectors import lineage_for_user

INBOX_LIMIT = 50
PER_PAGE = 50  # the promotions list
MY_REQUESTS_LIMIT = 20
LINEAGE_DEPTH = 10


def _promotion(request, pk: int) -> PromotionRequest:
    """The request if the user may see it; a hidden one raises the same NotFound as a missing one (a view
    under `page_errors` answers 404)."""
    return selectors.promotion_get_for_user(user=request.user, pk=pk)


@login_required
@require_GET
def inbox(request):
    user = request.user
    waiting = list(selectors.promotion_inbox_for_user(user=user)[:INBOX_LIMIT])
    mine = list(selectors.promotion_requests_of_user(user=user)[:MY_REQUESTS_LIMIT])
    rows = selectors.promotion_rows(promotions=[*waiting, *mine])
    context = {
        "nav": "inbox",
        "waiting": rows[: len(waiting)],
        "waiting_limit": INBOX_LIMIT,
        "mine": rows[len(waiting) :],
        "activity": selectors.activity_list_for_user(user=user),
        "promotion_kind": PromotionRequest._meta.label_lower,
    }
    return render(request, "approvals/inbox.html", context)


@login_required
@require_GET
def promotion_list(request):
    """Every promotion the reader may see, newest first, filtered as the API's list is, a page at a time."""
    stages = list(Stage.objects.order_by("order"))
    form = PromotionFilterForm(request.GET, stages=stages)
    filters = form.filters() if form.is_valid() else {}
    pager = paginate(
        request, selectors.promotion_search_for_user(user=request.user, filters=filters), PER_PAGE
    )
    context = {
        "nav": "promotions",
        "form": form,
        "filtered": bool(filters),
        "pager": pager,
        "rows": selectors.promotion_rows(promotions=pager["rows"]),
    }
    return render(request, "approvals/promotion_list.html", context)


@login_required
@require_GET
@page_errors
def promotion_detail(request, pk: int):
    return _render_page(request, _promotion(request, pk))


# Each decision form: its class, its prefix on the page, the service it calls, and the field it passes.
DECISIONS = {
    "approve": (ApproveForm, services.promotion_approve, "comment"),
    "reject": (RejectForm, services.promotion_reject, "comment"),
    "cancel": (CancelForm, services.promotion_cancel, "reason"),
}


def _decide(request, pk: int, decision: str):
    """Validate the decision's form (shape only), then call its service like the API does."""
    form_class, service, field = DECISIONS[decision]
    promotion = _promotion(request, pk)
    form = form_class(request.POST, auto_id=f"{decision}_%s")
    if not form.is_valid():
        return _render_page(request, promotion, status=422, **{f"{decision}_form": form})
    return _act(request, promotion, service, **{field: form.cleaned_data[field]})


@login_required
@require_POST
@page_errors
def promotion_approve(request, pk: int):
    return _decide(request, pk, "approve")


@login_required
@require_POST
@page_errors
def promotion_reject(request, pk: int):
    return _decide(request, pk, "reject")


@login_required
@require_POST
@page_errors
def promotion_cancel(request, pk: int):
    return _decide(request, pk, "cancel")


@login_required
@require_POST
@page_errors
def promotion_apply(request, pk: int):
    return _act(request, _promotion(request, pk), services.promotion_apply)


def _act(request, promotion: PromotionRequest, service, **data):
    """Call the service as the API does; a refusal becomes a message on the page, never a second rule."""
    try:
        after = service(actor=request.user, source=web_source(request), promotion_id=promotion.pk, **data)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        if after.status == Status.FAILED:
            messages.error(request, f"Promotion #{after.pk} failed: {after.status_reason}")
        else:
            messages.success(request, _outcome(after))
    return redirect("approvals:promotion", pk=promotion.pk)


def _outcome(promotion: PromotionRequest) -> str:
    if promotion.status == Status.APPLIED:
        return f"Promotion #{promotion.pk} is applied: {promotion.version} is now in {promotion.stage.name}."
    if promotion.status == Status.PENDING:
        return f"Your approval of promotion #{promotion.pk} is recorded; it waits for more approvals."
    return f"Promotion #{promotion.pk} is now {promotion.get_status_display().lower()}."


# The promotion page -------------------------------------------------------------------------------


def _render_page(request, promotion: PromotionRequest, status: int = 200, **forms):
    context = {
        "nav": "inbox",
        **{
            f"{name}_form": form_class(auto_id=f"{name}_%s") for name, (form_class, _, _) in DECISIONS.items()
        },
        **forms,
        **_page_context(request.user, promotion),
    }
    return render(request, "approvals/promotion.html", context, status=status)


def _page_context(user, promotion: PromotionRequest) -> dict:
    """What changes (the comparison), is it safe (the gates, checked now), who decides (the policy in
    words, the eligible reviewers, the reviews so far) and where the viewer stands."""
    candidate = promotion.version
    baseline = selectors.comparison_baseline(promotion=promotion)
    base = baseline.version
    standing = standing_many([promotion])[promotion.pk]
    requirements = standing.requirements
    reviews = list(promotion.reviews.all())  # prefetched with their reviewers by the selector
    is_open = promotion.status in OPEN_STATUSES
    deciders = selectors.promotion_deciders(
        promotion=promotion, needs=requirements, reviews=reviews, policies=standing.policies
    )
    counted = len(deciders.counted_ids) if is_open else None
    state = _review_state(user, promotion, requirements, reviews)
    may_apply = promotion.status == Status.APPROVED and _requester_or_manager(user, promotion)
    return {
        "promotion": promotion,
        "candidate": candidate,
        "base": base,
        "baseline": baseline,
        "requirements": requirements,
        "gates": standing.gates,
        "failing_gates": standing.failing,
        "gate_warning": _gate_warning(standing, counted or 0) if state["may_review"] else None,
        "apply_warning": _apply_warning(standing) if may_apply else None,
        "policy": _policy_summary(promotion, standing, deciders.team_names),
        "deciders": deciders,
        "reviews": reviews,
        # Counted live while the request is open (who still may review); a final request keeps its record.
        "counted": counted,
        "recorded_approvals": sum(review.decision == Decision.APPROVE for review in reviews),
        **state,
        "may_withdraw": is_open and _requester_or_manager(user, promotion),
        "may_apply": may_apply,
        "comparison": compare.version_comparison(
            promotion.asset.kind, candidate, base, directions=compare.gate_directions(requirements["gates"])
        ),
        "current_label": f"v{base.number}" if base else "Current",
        "candidate_label": f"v{candidate.number}",
        "lineage": lineage_for_user(user=user, version=candidate, direction="upstream", depth=LINEAGE_DEPTH),
        "history": selectors.promotion_history(promotion=promotion),
        "ci": _ci_facts(promotion.ci),
        "origin": _ci_facts(candidate.origin),
        "base_origin": _ci_facts(base.origin) if base else None,
    }


def _policy_summary(promotion: PromotionRequest, standing, team_names: list[str]) -> dict:
    """The governing policy in words, and each policy that applies today with its page if there is one."""
    requirements = standing.requirements
    count = requirements["required_approvals"]
    if not requirements["reviewer_teams"]:
        who = f"people holding the review role on {promotion.asset}"
    elif not team_names:
        who = "nobody: the policies name reviewer teams with no team in common"
    else:
        who = ("team " if len(team_names) == 1 else "teams ") + " or ".join(team_names)
    gates = ", ".join(gate_label(gate) for gate in requirements["gates"]) or "none"
    parts = [
        f"{count} approval{'s' if count != 1 else ''} from {who}",
        "the author may approve" if requirements["allow_author_approval"] else "the author may not approve",
        f"gates: {gates}",
    ]
    if standing.policies:
        parts.append(f"expires after {_duration(standing.policies[0].expiry_hours)}")
    parts.append(
        "applied on approval"
        if requirements["apply_on_approval"]
        else "applied by the requester or a manager once approved"
    )
    return {
        "words": "; ".join(parts),
        "policies": [
            {
                "pk": policy.pk,
                "label": f"{promotion.asset if policy.asset_id else policy.scope} → {promotion.stage.name}",
                "url": _policy_url(policy.pk),
            }
            for policy in standing.policies
        ],
        "who": who,
        "reviewers": f"members of {who}" if team_names else who,
    }


def _duration(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _policy_url(pk: int) -> str:
    """The policy's page when the site has one (/policies/<id>/), else "" and the page shows it inline."""
    path = f"/policies/{pk}/"
    try:
        resolve(path)
    except Resolver404:
        return ""
    return path


def _gate_warning(standing, counted: int) -> str | None:
    """Beside the Approve button when a gate fails: what approving now leads to, under the services' rules
    (an approval is recorded whatever the gates; applying checks them again, and a failing gate then ends
    the request as failed: services.promotions._apply)."""
    if not standing.failing:
        return None
    failing = "; ".join(f"Gate {gate.sentence}" for gate in standing.failing)
    requirements = standing.requirements
    needed = requirements["required_approvals"]
    if counted + 1 < needed:
        consequence = (
            "Approving now records your approval, but the request cannot be applied until the gate passes."
        )
    elif requirements["apply_on_approval"]:
        consequence = (
            f"Your approval would complete the {needed} needed, and the policy applies on approval: the "
            "request would fail at once, since it cannot be applied while a gate fails. Reject it, or wait "
            "until the gate passes (a new evaluation, for example)."
        )
    else:
        consequence = (
            f"Your approval would complete the {needed} needed, but applying the request fails (and ends "
            "it) until the gate passes."
        )
    return f"{failing}. {consequence}"


def _apply_warning(standing) -> str | None:
    if not standing.failing:
        return None
    failing = "; ".join(f"Gate {gate.sentence}" for gate in standing.failing)
    return f"{failing}. Applying now would end the request as failed; wait until the gate passes."


def _review_state(user, promotion: PromotionRequest, requirements: dict, reviews: list) -> dict:
    """Where the viewer stands, in the order the services check it: their own review (said plainly, not
    as a refusal), a request no longer pending, a refusal (why the buttons are not offered), or free to
    review."""
    mine = next((review for review in reviews if review.reviewer_id == user.pk), None)
    closed = None
    if promotion.status != Status.PENDING:
        closed = f"This request is {promotion.get_status_display().lower()}; it can no longer be reviewed."
    refusal = None
    if mine is None and closed is None:
        found = review_refusal(user, promotion, requirements)
        refusal = found.detail if found is not None else None
    return {
        "my_review": mine,
        "closed": closed,
        "refusal": refusal,
        "may_review": mine is None and closed is None and refusal is None,
    }


def _requester_or_manager(user, promotion: PromotionRequest) -> bool:
    """Whether to offer withdraw/apply; the service decides (and refuses anyone else)."""
    return user.pk == promotion.requested_by_id or Role.MANAGE in effective_roles(user, promotion.asset)


def _ci_facts(data: dict) -> dict:
    """CI facts for display; a run URL is a link only when it is http(s) (stored data is not trusted)."""
    facts = {key: value for key, value in (data or {}).items() if key not in ("commit", "ref", "run_url")}
    run_url = str((data or {}).get("run_url") or "")
    return {
        "commit": (data or {}).get("commit", ""),
        "ref": (data or {}).get("ref", ""),
        "run_url": web_link(run_url),
        "run_text": run_url,
        "extra": sorted(facts.items()),
    }
