"""Policy pages: every policy the reader may see (/policies/), one policy in words (/policies/<id>/), and
for the asset's managers (admins for policies of many assets) the forms to make, change and delete one.

A thin adapter over the same selectors and services as the API (approvals/api/views.py): visibility from
approvals.selectors, every rule and its audit event in approvals.services.policies. A refused change comes
back on its form, next to the field it is about, with what was typed kept; success redirects with a message.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from approvals import policy as rules
from approvals import selectors, services
from approvals.forms import PolicyForm
from approvals.models import Policy
from approvals.permissions import may_edit_policy
from core.exceptions import DomainError, InvalidInput, NotFound
from core.web import page_errors, paginate, refusal_on_form, report, web_source
from registry import selectors as registry_selectors
from registry.models import Stage

POLICIES_PER_PAGE = 50


def in_words(policy: Policy) -> list[str]:
    return rules.describe_policy(
        scope=policy.scope,
        stage=policy.stage.name,
        required_approvals=policy.required_approvals,
        reviewer_teams=sorted(team.name for team in policy.reviewer_teams.all()),
        allow_author_approval=policy.allow_author_approval,
        gates=policy.gates,
        expiry_hours=policy.expiry_hours,
        apply_on_approval=policy.apply_on_approval,
    )


@login_required
@require_GET
def policy_list(request):
    pager = paginate(request, selectors.policy_page_list_for_user(user=request.user), POLICIES_PER_PAGE)
    rows = [{"policy": policy, "words": in_words(policy)} for policy in pager["rows"]]
    context = {"nav": "policies", "pager": pager, "rows": rows}
    return render(request, "approvals/policy_list.html", context)


@login_required
@require_GET
@page_errors
def policy_detail(request, pk: int):
    policy = selectors.policy_get_for_user(user=request.user, pk=pk)
    context = {
        "nav": "policies",
        "policy": policy,
        "words": in_words(policy),
        "gates": [rules.describe(gate) for gate in policy.gates],
        "may_edit": may_edit_policy(request.user, policy.asset),
    }
    return render(request, "approvals/policy_detail.html", context)


def _form(request, *, editing: bool, **kwargs) -> PolicyForm:
    data = request.POST if request.method == "POST" else None
    stages = [] if editing else list(Stage.objects.order_by("order"))
    return PolicyForm(
        data, stages=stages, teams=list(Group.objects.order_by("name")), editing=editing, **kwargs
    )


def _form_page(request, form: PolicyForm, *, policy: Policy | None = None, status: int = 200):
    context = {"nav": "policies", "form": form, "policy": policy}
    return render(request, "approvals/policy_form.html", context, status=status)


def _create(request, form: PolicyForm) -> Policy:
    """Find the scope the form names (an unknown stage or a hidden asset is bad input) and make the policy."""
    data = form.cleaned_data
    asset = None
    if data["name"]:
        try:
            asset = registry_selectors.asset_get_for_user(
                user=request.user, kind=data["kind"], name=data["name"]
            )
        except NotFound:  # the same words whether it does not exist or may not be seen
            raise InvalidInput.field("name", f"there is no {data['kind']} named {data['name']!r}") from None
    stage = registry_selectors.stage_get_or_invalid(name=data["stage"])
    return services.policy_create(
        actor=request.user,
        source=web_source(request),
        stage=stage,
        asset=asset,
        kind=data["kind"],
        **form.policy_fields(),
    )


@login_required
@require_http_methods(["GET", "POST"])
def policy_create(request):
    form = _form(request, editing=False)
    if request.method == "GET" or not form.is_valid():
        return _form_page(request, form, status=200 if request.method == "GET" else 400)
    try:
        policy = _create(request, form)
    except DomainError as exc:
        refusal_on_form(form, exc, {"duplicate-policy": "stage"})
        return _form_page(request, form, status=exc.status)
    messages.success(request, f"Created the {policy}.")
    return redirect("approvals:policy", pk=policy.pk)


def _editable(request, pk: int) -> Policy:
    """The policy if the reader may see it (404 otherwise) and change it (403 otherwise)."""
    policy = selectors.policy_get_for_user(user=request.user, pk=pk)
    if not may_edit_policy(request.user, policy.asset):
        raise PermissionDenied(
            "Only the asset's managers (registry admins for many assets) change its policies."
        )
    return policy


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def policy_edit(request, pk: int):
    policy = _editable(request, pk)
    initial = {
        "required_approvals": policy.required_approvals,
        "reviewer_teams": [team.name for team in policy.reviewer_teams.all()],
        "allow_author_approval": policy.allow_author_approval,
        "gates": json.dumps(policy.gates),
        "expiry_hours": policy.expiry_hours,
        "apply_on_approval": policy.apply_on_approval,
    }
    form = _form(request, editing=True, initial=initial)
    if request.method == "GET" or not form.is_valid():
        return _form_page(request, form, policy=policy, status=200 if request.method == "GET" else 400)
    try:
        services.policy_update(
            actor=request.user, source=web_source(request), policy=policy, **form.policy_fields()
        )
    except DomainError as exc:
        refusal_on_form(form, exc)
        return _form_page(request, form, policy=policy, status=exc.status)
    messages.success(request, f"Saved the {policy}.")
    return redirect("approvals:policy", pk=policy.pk)


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def policy_delete(request, pk: int):
    """GET asks to confirm; the POST of that page deletes."""
    policy = _editable(request, pk)
    if request.method == "GET":
        context = {"nav": "policies", "policy": policy, "words": in_words(policy)}
        return render(request, "approvals/policy_delete.html", context)
    text = str(policy)
    deleted = report(
        request,
        lambda: services.policy_delete(actor=request.user, source=web_source(request), policy=policy) or True,
        f"Deleted the {text}.",
    )
    return redirect("approvals:policies") if deleted else redirect("approvals:policy", pk=pk)
