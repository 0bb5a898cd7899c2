"""Who holds which role on an asset: a page of the access section (/access/assets/...). The asset's managers
and admins change it; auditors read it.

Every change goes through registry.services with a web Source, so it is checked and audited there; a refused
change (DomainError) comes back as a message on the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors as account_selectors
from core.web import form_problem, page_errors, report, web_source
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


@login_required
@require_GET
@page_errors
def asset_grants(request, kind: str, name: str):
    asset = _asset(request, kind, name)
    grants = selectors.grant_list_for_user(user=request.user, asset=asset)
    can_manage = Role.MANAGE in effective_roles(request.user, asset)
    context = {
        "nav": "access",
        "asset": asset,
        "grants": grants,
        "can_manage": can_manage,
        "form": GrantForm() if can_manage else None,
    }
    return render(request, "access/asset_grants.html", context)


def _grant_change(request, kind: str, name: str, *, add: bool):
    asset = _asset(request, kind, name)
    _require_manage(request.user, asset)  # an auditor may read the grants, never change them: 403
    back = redirect("access:asset-grants", asset.kind, asset.name)
    form = GrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_problem(form))
        return back
    data = form.cleaned_data
    service = services.grant_add if add else services.grant_remove

    def change():
        principal = account_selectors.principal_get(
            principal_type=data["principal_type"], name=data["principal"]
        )
        service(
            actor=request.user,
            source=web_source(request),
            asset=asset,
            principal=principal,
            role=Role(data["role"]),
        )

    role, who = data["role"], f"{data['principal_type']} {data['principal']}"
    report(
        request,
        change,
        f"Granted {role} on {asset} to {who}." if add else f"Revoked {role} on {asset} from {who}.",
    )
    return back


@login_required
@require_POST
@page_errors
def grant_add(request, kind: str, name: str):
    return _grant_change(request, kind, name, add=True)


@login_required
@require_POST
@page_errors
def grant_remove(request, kind: str, name: str):
    return _grant_change(request, kind, name, add=False)
