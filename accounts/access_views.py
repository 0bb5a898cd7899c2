"""Server-rendered access pages: service accounts and their tokens (admins), your own tokens (anyone signed
in; the only page where a token with the review scope is made), teams and their members and people's global
roles and flags (admins). Who holds which role on an asset is a registry page (registry/access_views.py).

Every change goes through accounts.services with a web Source, so it is checked and audited there; a refused
change (DomainError) comes back as a message on the page it was made from.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import (
    AccountRolesForm,
    PersonalTokenForm,
    ServiceAccountForm,
    TeamMemberForm,
    TokenForm,
)
from accounts.models import ApiToken, User
from accounts.permissions import is_admin
from core.exceptions import DomainError
from core.web import form_problem, page_errors, refusal_on_form, report, web_source


def admin_required(view):
    """Service accounts and tokens are for registry admins; anyone else signed in gets 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied("Only registry admins manage service accounts and tokens.")
        return view(request, *args, **kwargs)

    return wrapper


# Service accounts and tokens ------------------------------------------------------------------------------


def _index(request, *, account_form=None, token_form=None, status: int = 200):
    tokens = ApiToken.objects.select_related("created_by", "revoked_by").order_by("-id")
    accounts = list(
        selectors.service_account_list_for_user(user=request.user).prefetch_related(
            Prefetch("tokens", queryset=tokens)
        )
    )
    token_form = token_form or TokenForm()
    # The accounts are loaded already: offer them as the choices instead of querying for them again.
    token_form.fields["account"].choices = [(account.username, account.username) for account in accounts]
    personal = selectors.token_list_for_user(user=request.user).filter(account__is_service_account=False)
    context = {
        "nav": "access",
        "accounts": accounts,
        "personal_tokens": list(personal),
        "account_form": account_form or ServiceAccountForm(),
        "token_form": token_form,
    }
    return render(request, "access/index.html", context, status=status)


@login_required
@require_GET
@admin_required
def index(request):
    return _index(request)


@login_required
@require_POST
@admin_required
def service_account_create(request):
    """A new service account. A refusal shows next to its field, what was typed kept; success redirects."""
    form = ServiceAccountForm(request.POST)
    if not form.is_valid():
        return _index(request, account_form=form, status=400)
    try:
        account = services.service_account_create(
            actor=request.user,
            source=web_source(request),
            name=form.cleaned_data["name"],
            team=form.cleaned_data["team"],
        )
    except DomainError as exc:
        refusal_on_form(form, exc, {"duplicate-name": "name"})
        return _index(request, account_form=form, status=exc.status)
    messages.success(request, f"Created the service account {account.username}. Give it a token below.")
    return redirect("access:index")


@login_required
@require_POST
@admin_required
def token_create(request):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _index(request, token_form=form, status=400)
    data = form.cleaned_data
    try:
        record, token = services.token_create(
            actor=request.user,
            source=web_source(request),
            account=data["account"],
            name=data["name"],
            scopes=data["scopes"],
            expires_in_days=data["expires_in_days"],
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("access:index")
    return _token_created(request, record, token, nav="access")


NEW_TOKEN = "access.new_token"  # the session key holding a new token until its one display


def _token_created(request, record, token: str, *, nav: str):
    """Show the new token once, after a redirect (POST-redirect-GET: a reload never makes a second token).
    It waits in the session for that one display, which removes it."""
    request.session[NEW_TOKEN] = {"id": record.pk, "token": token, "nav": nav}
    return redirect("access:token-created")


@login_required
@require_GET
@page_errors
def token_created(request):
    """The token just made, shown once: the session forgets it as the page is made; a reload finds none."""
    shown = request.session.pop(NEW_TOKEN, None)
    if shown is None:
        messages.info(
            request, "A new token is shown only once; it is not shown again. Revoke it if it is lost."
        )
        return redirect("access:my-tokens")
    record = selectors.token_get_for_user(user=request.user, pk=shown["id"])
    context = {"nav": shown["nav"], "record": record, "token": shown["token"]}
    response = render(request, "access/token_created.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def token_revoke(request, pk: int):
    """Revoke a token: anyone their own (from their tokens page), admins any (from the access page). GET asks
    to confirm; the POST of that page revokes."""
    token = selectors.token_get_for_user(user=request.user, pk=pk)
    own = token.account_id == request.user.pk
    if not (own or is_admin(request.user)):
        raise PermissionDenied("Only registry admins revoke the tokens of other accounts.")
    back = "access:my-tokens" if own else "access:index"
    if request.method == "GET":
        context = {"nav": "tokens" if own else "access", "token": token, "back": back}
        return render(request, "access/token_revoke.html", context)
    report(
        request,
        lambda: services.token_revoke(actor=request.user, source=web_source(request), token=token),
        f"Revoked the token {token.name} of {token.account.username}.",
    )
    return redirect(back)


# Your own tokens ------------------------------------------------------------------------------------------


def _my_tokens(request, *, form=None, status: int = 200):
    tokens = selectors.token_list_for_user(user=request.user).filter(account=request.user)
    context = {
        "nav": "tokens",
        "tokens": list(tokens),
        "form": form or PersonalTokenForm(user=request.user),
    }
    return render(request, "access/my_tokens.html", context, status=status)


@login_required
@require_GET
def my_tokens(request):
    return _my_tokens(request)


@login_required
@require_POST
def my_token_create(request):
    """A token for yourself, from your signed-in session: the one way to a token with the review scope."""
    form = PersonalTokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _my_tokens(request, form=form, status=400)
    data = form.cleaned_data
    try:
        record, token = services.token_create(
            actor=request.user,
            source=web_source(request),
            account=request.user,
            name=data["name"],
            scopes=data["scopes"],
            expires_in_days=data["expires_in_days"],
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("access:my-tokens")
    return _token_created(request, record, token, nav="tokens")


# Teams and their members (admins) -------------------------------------------------------------------------


@login_required
@require_GET
@admin_required
def teams(request):
    context = {"nav": "access", "teams": list(selectors.team_list_for_user(user=request.user))}
    return render(request, "access/teams.html", context)


@login_required
@require_GET
@admin_required
@page_errors
def team(request, team: str):
    team = selectors.team_get_for_user(user=request.user, name=team)
    context = {
        "nav": "access",
        "team": team,
        "members": list(selectors.team_member_list(team=team)),
        "form": TeamMemberForm(),
    }
    return render(request, "access/team.html", context)


@login_required
@require_POST
@admin_required
@page_errors
def team_member_add(request, team: str):
    team = selectors.team_get_for_user(user=request.user, name=team)
    form = TeamMemberForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["user"]

        def add():
            member = selectors.account_get(name=name, field="user")
            services.team_member_add(actor=request.user, source=web_source(request), team=team, user=member)

        report(request, add, f"Added {name} to team {team.name}.")
    else:
        messages.error(request, form_problem(form))
    return redirect("access:team", team.name)


@login_required
@require_POST
@admin_required
@page_errors
def team_member_remove(request, team: str, username: str):
    team = selectors.team_get_for_user(user=request.user, name=team)
    member = selectors.account_get_for_user(user=request.user, name=username)
    report(
        request,
        lambda: services.team_member_remove(
            actor=request.user, source=web_source(request), team=team, user=member
        ),
        f"Removed {username} from team {team.name}.",
    )
    return redirect("access:team", team.name)


# People: global role and account flags (admins) -----------------------------------------------------------


@login_required
@require_GET
@admin_required
def people(request):
    context = {"nav": "access", "accounts": list(selectors.account_list_for_user(user=request.user))}
    return render(request, "access/people.html", context)


def _person(request, account: User, form=None, status: int = 200):
    superuser_editable = request.user.is_superuser
    form = form or AccountRolesForm(
        initial=selectors.account_roles(account), superuser_editable=superuser_editable
    )
    context = {
        "nav": "access",
        "account": account,
        "teams": list(account.groups.order_by("name")),
        "form": form,
    }
    return render(request, "access/person.html", context, status=status)


@login_required
@require_GET
@admin_required
@page_errors
def person(request, username: str):
    return _person(request, selectors.account_get_for_user(user=request.user, name=username))


@login_required
@require_POST
@admin_required
@page_errors
def person_roles(request, username: str):
    account = selectors.account_get_for_user(user=request.user, name=username)
    form = AccountRolesForm(
        request.POST,
        initial=selectors.account_roles(account),
        superuser_editable=request.user.is_superuser,
    )
    if not form.is_valid():
        return _person(request, account, form=form, status=400)
    report(
        request,
        lambda: services.user_update(
            actor=request.user, source=web_source(request), user=account, **form.cleaned_data
        ),
        f"Saved the roles of {account.username}.",
    )
    return redirect("access:person", account.username)
