"""Server-rendered trust policy pages (admins): the list, a new one, edit, delete.

Every change goes through accounts.federation with a web Source, so it is checked and audited there; a refused
change comes back on the form.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts import federation, selectors
from accounts.access_views import admin_required
from accounts.forms import TrustPolicyForm
from core.exceptions import DomainError
from core.web import page_errors, web_source

NAV = {"nav": "access", "section": "trust"}


def _refused(form, exc: DomainError) -> None:
    """A service's refusal on the form: on the field it names (conditions.ref → conditions), else the form."""
    named = [error for error in exc.errors if error.field.split(".")[0] in form.fields]
    for error in named:
        field = error.field.split(".")[0]
        form.add_error(field, error.message if field == error.field else f"{error.field}: {error.message}")
    if not named:
        form.add_error(None, exc.detail)


@login_required
@require_GET
@admin_required
def trust_policies(request):
    policies = list(selectors.trust_policy_list_for_user(user=request.user))
    return render(request, "access/trust_policies.html", {**NAV, "policies": policies})


@login_required
@require_http_methods(["GET", "POST"])
@admin_required
def trust_policy_create(request):
    form = TrustPolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy = federation.trust_policy_create(
                actor=request.user, source=web_source(request), **form.cleaned_data
            )
        except DomainError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"Created trust policy {policy.name}.")
            return redirect("access:trust-policies")
    status = 400 if request.method == "POST" else 200
    return render(request, "access/trust_policy_form.html", {**NAV, "form": form, "new": True}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@admin_required
@page_errors
def trust_policy_edit(request, pk: int):
    policy = selectors.trust_policy_get_for_user(user=request.user, pk=pk)
    initial = {name: getattr(policy, name) for name in federation.POLICY_FIELDS}
    initial["conditions"] = TrustPolicyForm.conditions_text(policy.conditions)
    form = TrustPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            federation.trust_policy_update(
                actor=request.user, source=web_source(request), policy=policy, **form.cleaned_data
            )
        except DomainError as exc:
            _refused(form, exc)
        else:
            messages.success(request, f"Saved trust policy {form.cleaned_data['name']}.")
            return redirect("access:trust-policies")
    status = 400 if request.method == "POST" else 200
    context = {**NAV, "form": form, "policy": policy, "new": False}
    return render(request, "access/trust_policy_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@admin_required
@page_errors
def trust_policy_delete(request, pk: int):
    policy = selectors.trust_policy_get_for_user(user=request.user, pk=pk)
    if request.method == "POST":
        federation.trust_policy_delete(actor=request.user, source=web_source(request), policy=policy)
        messages.success(request, f"Deleted trust policy {policy.name}.")
        return redirect("access:trust-policies")
    return render(request, "access/trust_policy_delete.html", {**NAV, "policy": policy})
