"""Who holds which role on an asset: a page of the access section (/access/assets/...). The asset's managers
and admins change it; auditors read it.

Every change goes through registry.services with a web Source, so it is checked and audited there; a refused
grant comes back on its form, next to the field it is about, with what was typed kept; revoking asks to
confirm first.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors as account_selectors
from core.exceptions import DomainError
from core.web import page_errors, refusal_on_form, report, web_source
from registry import selectors, services
from registry.forms import GrantForm
from registry.models import Asset, AssetKind
from registry.permissions import Role, effective_roles


def _asset(request, kind: str, name: str) -> Asset:
    """The asset if the user may see it; NotFound otherwise, exactly as for an asset that does not exist."""
    if kind not in AssetKind.values:
        raise Http404
    return selectors.asset_get_for_user(user=request.user, kind=kind, name=name)


def _require_manage(user, asset: Asset) -> None:
    if Role.MANAGE not in effective_roles(user, asset):
        raise PermissionDenied(f"You need the 'manage' role on {asset} to change its grants.")


def _grants_page(request, asset: Asset, *, form=None, status: int = 200):
    grants = selectors.grant_list_for_user(user=request.user, asset=asset)
    can_manage = Role.MANAGE in effective_roles(request.user, asset)
    context = {
        "nav": "access",
        "asset": asset,
        "grants": grants,
        "can_manage": can_manage,
        "form": (form or GrantForm()) if can_manage else None,
    }
    return render(request, "access/asset_grants.html", context, status=status)


@login_required
@require_GET
@page_errors
def asset_grants(request, kind: str, name: str):
    return _grants_page(request, _asset(request, kind, name))


def _change_grant(request, asset: Asset, data: dict, *, add: bool) -> None:
    """Grant or revoke through the service (it checks and audits); a refusal raises DomainError."""
    principal = account_selectors.principal_get(principal_type=data["principal_type"], name=data["principal"])
    service = services.grant_add if add else services.grant_remove
    service(
        actor=request.user,
        source=web_source(request),
        asset=asset,
        principal=principal,
        role=Role(data["role"]),
    )


@login_required
@require_POST
@page_errors
def grant_add(request, kind: str, name: str):
    """Grant a role. Refusals show next to the fields, with what was typed kept; success redirects."""
    asset = _asset(request, kind, name)
    _require_manage(request.user, asset)  # an auditor may read the grants, never change them: 403
    form = GrantForm(request.POST)
    if not form.is_valid():
        return _grants_page(request, asset, form=form, status=400)
    data = form.cleaned_data
    try:
        _change_grant(request, asset, data, add=True)
    except DomainError as exc:
        refusal_on_form(form, exc, {"duplicate-grant": "principal"})
        return _grants_page(request, asset, form=form, status=exc.status)
    messages.success(
        request, f"Granted {data['role']} on {asset} to {data['principal_type']} {data['principal']}."
    )
    return redirect("access:asset-grants", asset.kind, asset.name)


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def grant_remove(request, kind: str, name: str):
    """Revoke a role: GET asks to confirm (the grant named in the query), the POST of that page revokes."""
    asset = _asset(request, kind, name)
    _require_manage(request.user, asset)
    back = redirect("access:asset-grants", asset.kind, asset.name)
    form = GrantForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        messages.error(request, "Choose a grant to revoke from the list.")
        return back
    data = form.cleaned_data
    if request.method == "GET":
        return render(request, "access/grant_revoke.html", {"nav": "access", "asset": asset, "grant": data})
    who = f"{data['principal_type']} {data['principal']}"
    report(
        request,
        lambda: _change_grant(request, asset, data, add=False),
        f"Revoked {data['role']} on {asset} from {who}.",
    )
    return back
