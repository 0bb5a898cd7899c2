"""Reviewer pages: the inbox, the promotions list and the promotion page. A thin adapter over the same
selectors and services as the API (approvals/api/views.py): visibility from the selectors, every rule and
refusal from the services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from approvals import policy as rules
from approvals import selectors, services
from approvals.forms import ApproveForm, CancelForm, PromotionFilterForm, RejectForm
from approvals.models import OPEN_STATUSES, Decision, PromotionRequest, Status
from approvals.requirements import counted_approvals, gate_results, requirements_for, review_refusal
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
    candidate = promotion.version
    base = selectors.base_version_for(promotion=promotion)
    requirements, _ = requirements_for(promotion)
    reviews = list(promotion.reviews.all())  # prefetched with their reviewers by the selector
    is_open = promotion.status in OPEN_STATUSES
    return {
        "promotion": promotion,
        "candidate": candidate,
        "base": base,
        "requirements": requirements,
        "gates": [
            {"result": result, "label": rules.describe(result.gate), "actual": _actual(result)}
            for result in gate_results(promotion, requirements)
        ],
        "reviews": reviews,
        # Counted live while the request is open (who still may review); a final request keeps its record.
        "counted": len(counted_approvals(promotion, requirements)) if is_open else None,
        "recorded_approvals": sum(review.decision == Decision.APPROVE for review in reviews),
        "refusal": _review_refusal(user, promotion, requirements, reviews),
        "may_withdraw": is_open and _requester_or_manager(user, promotion),
        "may_apply": promotion.status == Status.APPROVED and _requester_or_manager(user, promotion),
        "comparison": compare.version_comparison(promotion.asset.kind, candidate, base),
        "current_label": f"v{base.number}" if base else "Current",
        "candidate_label": f"v{candidate.number}",
        "lineage": lineage_for_user(user=user, version=candidate, direction="upstream", depth=LINEAGE_DEPTH),
        "history": selectors.promotion_history(promotion=promotion),
        "ci": _ci_facts(promotion.ci),
        "origin": _ci_facts(candidate.origin),
        "base_origin": _ci_facts(base.origin) if base else None,
    }


def _review_refusal(user, promotion: PromotionRequest, requirements: dict, reviews: list) -> str | None:
    """Why the approve and reject buttons are not offered, in the order the services check it."""
    if promotion.status != Status.PENDING:
        return f"This request is {promotion.get_status_display().lower()}; it can no longer be reviewed."
    refusal = review_refusal(user, promotion, requirements)
    if refusal is not None:
        return refusal.detail
    mine = next((review for review in reviews if review.reviewer_id == user.pk), None)
    if mine is not None:
        verb = "approved" if mine.decision == Decision.APPROVE else "rejected"
        return f"You have already reviewed this request: you {verb} it."
    return None


def _requester_or_manager(user, promotion: PromotionRequest) -> bool:
    """Whether to offer withdraw/apply; the service decides (and refuses anyone else)."""
    return user.pk == promotion.requested_by_id or Role.MANAGE in effective_roles(user, promotion.asset)


def _actual(result: rules.GateResult) -> str | None:
    value = result.actual
    if value is None:
        return None
    if result.gate["type"] == "model_card":
        return f"{value} characters"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return format_number(value)


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
