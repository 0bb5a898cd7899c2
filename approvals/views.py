"""Reviewer pages: the inbox, the promotions list and the promotion page. A thin adapter over the same
selectors and services as the API (approvals/api/views.py): visibility from the selectors, every rule and
refusal from the services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals import policy as rules
from approvals import selectors, services
from approvals.forms import ApproveForm, CancelForm, PromotionFilterForm, PromotionRequestForm, RejectForm
from approvals.models import OPEN_STATUSES, Decision, PromotionRequest, Status
from approvals.requirements import (
    combined_requirements,
    gate_label,
    policies_by_stage,
    review_refusal,
    standing_many,
)
from core.exceptions import DomainError, Forbidden, NotFound, Unprocessable
from core.web import page_errors, paginate, refusal_on_form, web_link, web_source
from registry import compare
from registry import selectors as registry_selectors
from registry.models import Asset, AssetKind, Stage
from registry.permissions import Role, effective_roles
from registry.sections import AssetSection, VersionAction
from registry.selectors import lineage_for_user

# The inbox lists the oldest requests waiting and the newest of "My requests"; the promotions list has
# them all, a page at a time (`?show=waiting`, `?show=mine`).
INBOX_LIMIT = 25
MY_REQUESTS_LIMIT = 10
PER_PAGE = 25  # the promotions list
LINEAGE_DEPTH = 10
RECENT_DECIDED = 5  # the asset page lists the open requests and this many decided ones
VERSION_CHOICES = 50  # the request page offers the latest this many versions (and the one asked for)


def _promotion(request, pk: int) -> PromotionRequest:
    """The request if the user may see it; a hidden one raises the same NotFound as a missing one (a view
    under `page_errors` answers 404)."""
    return selectors.promotion_get_for_user(user=request.user, pk=pk)


@login_required
@require_GET
def inbox(request):
    user = request.user
    waiting, waiting_total = selectors.promotion_inbox_head_for_user(user=user, limit=INBOX_LIMIT)
    mine = selectors.promotion_requests_head_for_user(user=user, limit=MY_REQUESTS_LIMIT + 1)
    rows = selectors.promotion_rows(promotions=[*waiting, *mine[:MY_REQUESTS_LIMIT]])
    request.inbox_waiting_count = waiting_total  # the header's badge shows the same number
    context = {
        "nav": "inbox",
        "waiting": rows[: len(waiting)],
        "waiting_total": waiting_total,
        "mine": rows[len(waiting) :],
        "more_mine": len(mine) > MY_REQUESTS_LIMIT,
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
    valid = form.is_valid()
    filters, show = (form.filters(), form.shown()) if valid else ({}, "")
    pager = paginate(
        request, selectors.promotion_search_for_user(user=request.user, filters=filters, show=show), PER_PAGE
    )
    context = {
        "nav": "promotions",
        "form": form,
        "filtered": bool(filters) or bool(show),
        "show": show,
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


# Requesting a promotion from the pages ---------------------------------------------------------------


def _may_request(asset: Asset, roles: set) -> bool:
    return Role.REQUEST_PROMOTION in roles and not asset.is_archived


# A refusal of promotion_request that concerns one field of the form is shown on that field.
REQUEST_REFUSAL_FIELDS = {"rollback-required": "rollback", "already-in-stage": "stage", "no-policy": "stage"}


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def promotion_new(request, kind: str, name: str):
    """Ask for a version of an asset to go to a stage (promotion_request, as the API's POST /promotions): a
    rollback is a request for an older version with the rollback box ticked. Success opens the request."""
    asset = _visible_asset(request, kind, name)
    if not _may_request(asset, effective_roles(request.user, asset)):
        raise Forbidden(f"You need the 'request_promotion' role on an active {asset} to request a promotion.")
    stages = registry_selectors.stage_pointer_list(asset=asset)
    numbers = list(
        registry_selectors.version_list(asset=asset)
        .order_by("-number")
        .values_list("number", flat=True)[:VERSION_CHOICES]
    )
    asked = request.GET.get("version", "")
    if asked.isdigit() and int(asked) not in numbers and 0 < int(asked) <= asset.latest_version_number:
        numbers.append(int(asked))
    form = PromotionRequestForm(
        request.POST or None,
        versions=numbers,
        stages=[item["stage"].name for item in stages],
        initial={"version": asked, "stage": _next_stage(stages, asked)},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            promotion = services.promotion_request(
                actor=request.user,
                source=web_source(request),
                asset=asset,
                version=registry_selectors.version_get(asset=asset, number=data["version"]),
                stage=registry_selectors.stage_get_or_invalid(name=data["stage"]),
                justification=data["justification"],
                rollback=data["rollback"],
            )
        except (Forbidden, NotFound):
            raise
        except DomainError as exc:
            if exc.type == "rollback-required":  # the API's wording names its body field; the page its box
                exc = Unprocessable(
                    f"v{data['version']} is older than v{exc.extra['current_version']}, which is in "
                    f"{data['stage']}: tick “This is a rollback” to put it back.",
                    type=exc.type,
                )
            refusal_on_form(form, exc, REQUEST_REFUSAL_FIELDS)
        else:
            messages.success(request, _requested(promotion))
            return redirect("approvals:promotion", pk=promotion.pk)
    policies = policies_by_stage(asset)
    context = {
        "nav": "registry",
        "asset": asset,
        "form": form,
        "stages": [
            {**item, **_stage_policies(item["stage"], policies.get(item["stage"], []))} for item in stages
        ],
    }
    return render(request, "approvals/promotion_new.html", context, status=400 if form.is_bound else 200)


def _visible_asset(request, kind: str, name: str) -> Asset:
    if kind not in AssetKind.values:
        raise NotFound("Not found.")
    return registry_selectors.asset_get_for_user(user=request.user, kind=kind, name=name)


def _next_stage(stages: list[dict], asked: str) -> str:
    """The stage to offer first: the first one the version asked for is not in yet."""
    for item in stages:
        pointer = item["pointer"]
        if pointer is None or str(pointer.version.number) != asked:
            return item["stage"].name
    return ""


def _stage_policies(stage, policies: list) -> dict:
    """What a promotion into stage needs in words, and links to the policies behind it (when the app has
    policy pages: the link is left out otherwise)."""
    links = []
    for policy in policies:
        try:
            links.append((f"policy for {policy.scope}", reverse("approvals:policy", args=[policy.pk])))
        except NoReverseMatch:
            break
    return {"requires": _requirements_in_words(combined_requirements(policies), stage), "policy_links": links}


def _requirements_in_words(requirements: dict | None, stage) -> str:
    """What a promotion into stage needs, from the combined requirements of the policies that apply now."""
    if requirements is None and not stage.protected:
        return "No promotion needed: a contributor puts a version here from the version's page."
    if requirements is None:
        return "No policy governs this stage for this asset yet: a manager must define one first."
    count = requirements["required_approvals"]
    words = [f"{count} approval{'s' if count != 1 else ''} from reviewers"]
    if requirements["gates"]:
        words.append("gates: " + "; ".join(rules.describe(gate) for gate in requirements["gates"]))
    if not requirements["apply_on_approval"]:
        words.append("applied by the requester or a manager after approval")
    return ", ".join(words) + "."


def _requested(promotion: PromotionRequest) -> str:
    kind = "Rollback" if promotion.rollback else "Promotion"
    return (
        f"{kind} #{promotion.pk} requested: {promotion.version} to {promotion.stage.name}. "
        "It waits for its reviewers."
    )


def asset_promotions_section(*, request, asset: Asset, roles: set) -> AssetSection:
    """The asset page's block of promotions (registry.sections): the open requests, the last few decided."""
    open_rows, decided = selectors.asset_promotions(asset=asset, recent=RECENT_DECIDED)
    policies = [
        {"stage": stage, **_stage_policies(stage, applying)}
        for stage, applying in policies_by_stage(asset).items()
    ]
    return AssetSection(
        template="approvals/_asset_promotions.html",
        context={
            "open": open_rows,
            "decided": decided,
            "policies": policies,
            "recent": RECENT_DECIDED,
            "request_url": _request_url(asset) if _may_request(asset, roles) else "",
        },
        link=("Promotions", "#promotions-heading"),
    )


def request_promotion_action(*, asset: Asset, roles: set) -> VersionAction | None:
    """The link to request a promotion of a version, for those who may (registry.sections)."""
    if not _may_request(asset, roles):
        return None
    return VersionAction(label="Request a promotion", url=_request_url(asset))


def _request_url(asset: Asset) -> str:
    return reverse("approvals:promotion-new", args=[asset.kind, asset.name])


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
    if promotion.status == Status.CANCELLED:
        return f"Promotion #{promotion.pk} is withdrawn."
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
