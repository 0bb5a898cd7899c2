"""The access pages: service accounts and tokens (admins), and an asset's grants (managers; auditors read)."""

import html
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiToken, User
from accounts.services import service_account_create, token_create
from audit.models import Action, AuditEvent
from core.source import Source
from registry.permissions import Role, granted_roles
from registry.services import grant_add
from tests.factories import AssetFactory, UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"
GRANTS = "/access/assets/model/fraud/"


@pytest.fixture
def person():
    return UserFactory(username="pat")


@pytest.fixture
def ci(admin):
    return service_account_create(
        actor=admin, source=Source.cli(), name="ci-bot", team=Group.objects.create(name="ml")
    )


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=since).order_by("seq"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# Service accounts and tokens: who may -------------------------------------------------------------------


def test_admin_sees_service_accounts_and_tokens(client, admin, ci):
    record, _ = token_create(
        actor=admin, source=Source.cli(), account=ci, name="gha", scopes=["read", "write"]
    )
    client.force_login(admin)
    response = client.get("/access/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'aria-current="page">Access' in body
    assert "ci-bot" in body and "team ml" in body
    assert f"mgr_{record.lookup}_…{record.last4}" in body
    assert '<span class="badge">read</span>' in body and '<span class="badge ok">active</span>' in body
    assert 'id="token_scopes_0"' in body and 'name="expires_in_days" value="90"' in body


@pytest.mark.parametrize("role", ["auditor", ""])
def test_non_admins_get_403(client, role):
    client.force_login(UserFactory(username="someone", global_role=role))
    assert client.get("/access/").status_code == 403
    assert client.post("/access/service-accounts/new", {"name": "x"}).status_code == 403
    assert client.post("/access/tokens/new", {"account": "x"}).status_code == 403
    assert not User.objects.filter(username="x").exists()


@pytest.mark.parametrize(
    "url",
    [
        "/access/",
        "/access/service-accounts/new",
        "/access/tokens/new",
        "/access/tokens/1/revoke",
        GRANTS,
        "/access/tokens/mine/new",
    ],
)
def test_anonymous_is_sent_to_sign_in(client, fraud, url):
    response = client.get(url) if url.endswith("/") else client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/access/"),
        ("get", "/access/service-accounts/new"),
        ("get", "/access/tokens/new"),
        ("put", "/access/tokens/1/revoke"),
        ("post", GRANTS),
        ("get", f"{GRANTS}grants/add"),
        ("put", f"{GRANTS}grants/remove"),
        ("post", "/access/tokens/created"),
        ("post", "/access/tokens/mine"),
        ("get", "/access/tokens/mine/new"),
    ],
)
def test_wrong_method_is_405(client, admin, fraud, method, url):
    client.force_login(admin)
    assert getattr(client, method)(url).status_code == 405


# Service accounts and tokens: what they do --------------------------------------------------------------


def test_create_a_service_account(client, admin):
    Group.objects.create(name="platform")
    client.force_login(admin)
    before = last_seq()
    response = client.post(
        "/access/service-accounts/new", {"name": "ci-two", "team": "platform"}, follow=True
    )
    assert response.redirect_chain == [("/access/", 302)]
    account = User.objects.get(username="ci-two")
    assert account.is_service_account and account.groups.get().name == "platform"
    [event] = new_events(before)
    assert (event.action, event.source, event.actor_repr) == (Action.ACCOUNT_CREATED, "web", "root")
    assert "Created the service account ci-two." in shown_messages(response)[0]


def field_error(response, field_id: str) -> str:
    """The inline error shown next to a field (templates/_field.html), or "" when there is none."""
    found = re.search(
        rf'<p class="field-error" id="{field_id}_error" role="alert">([^<]*)</p>', text_of(response)
    )
    return html.unescape(found.group(1)) if found else ""


def text_of(response) -> str:
    return response.content.decode()


def test_a_refused_service_account_shows_next_to_its_field_and_keeps_the_input(client, admin, ci):
    client.force_login(admin)
    response = client.post("/access/service-accounts/new", {"name": "ci-bot", "team": "ml"})
    assert response.status_code == 409
    assert field_error(response, "sa_name") == "An account named 'ci-bot' already exists."
    assert 'name="name" value="ci-bot"' in text_of(response)  # what was typed is still there
    assert '<option value="ml" selected>' in text_of(response)
    assert not shown_messages(response)  # no banner at the top of the page
    response = client.post("/access/service-accounts/new", {"name": "Not A Name"})
    assert response.status_code == 400
    assert field_error(response, "sa_name").startswith("Must be 1-100 characters")
    assert "name:" not in field_error(response, "sa_name")  # no field jargon
    assert 'value="Not A Name"' in text_of(response)
    response = client.post("/access/service-accounts/new", {"name": ""})
    assert field_error(response, "sa_name") == "Enter a name for the service account."
    assert User.objects.filter(is_service_account=True).count() == 1


def test_creating_a_token_shows_it_once_and_stores_only_its_hash(client, admin, ci):
    client.force_login(admin)
    before = last_seq()
    posted = client.post(
        "/access/tokens/new",
        {"account": "ci-bot", "name": "gha", "scopes": ["read", "promote"], "expires_in_days": "30"},
    )
    # POST-redirect-GET: the POST's answer holds no token, so reloading the page never makes a second one.
    assert posted.status_code == 302 and posted["Location"] == "/access/tokens/created"
    assert "mgr_" not in text_of(posted)
    response = client.get(posted["Location"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = re.search(r'id="new-token" class="secret" value="([^"]+)"', response.content.decode()).group(1)
    record = ApiToken.objects.get()
    assert token.startswith(f"mgr_{record.lookup}_") and token.endswith(record.last4)
    assert record.hashed == ApiToken.hash(token)
    assert record.scopes == ["promote", "read"] and record.account == ci
    stored = ApiToken.objects.values_list("name", "lookup", "hashed", "last4", "scopes").get()
    assert all(token not in str(value) for value in stored)
    # Kept in the session only until its one display: gone now, and a reload does not show it again.
    assert all(token not in str(value) for value in client.session.values())
    reload = client.get("/access/tokens/created", follow=True)
    assert token not in text_of(reload) and reload.redirect_chain == [("/access/tokens/mine", 302)]
    assert "shown only once" in shown_messages(reload)[0]
    [event] = new_events(before)
    assert event.action == Action.TOKEN_CREATED and token not in bytes(event.body).decode()
    again = client.get("/access/").content.decode()
    assert token not in again and f"mgr_{record.lookup}_…{record.last4}" in again


def test_the_new_token_works_against_the_api(client, admin, ci):
    client.force_login(admin)
    response = client.post(
        "/access/tokens/new",
        {"account": "ci-bot", "name": "gha", "scopes": ["read"], "expires_in_days": "90"},
        follow=True,
    )
    token = re.search(r'id="new-token" class="secret" value="([^"]+)"', response.content.decode()).group(1)
    client.logout()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.content
    assert me.json()["username"] == "ci-bot"


def test_an_invalid_token_form_is_shown_again_with_its_errors(client, admin, ci):
    client.force_login(admin)
    response = client.post("/access/tokens/new", {"account": "ci-bot", "name": "", "expires_in_days": "999"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This field is required." in body and "less than or equal to 365" in body
    assert not ApiToken.objects.exists()


def test_review_scope_is_not_offered_to_service_accounts(client, admin, ci):
    client.force_login(admin)
    assert 'value="review"' not in client.get("/access/").content.decode()
    response = client.post(
        "/access/tokens/new", {"account": "ci-bot", "name": "x", "scopes": ["review"], "expires_in_days": "9"}
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_revoking_a_token(client, admin, ci):
    record, _ = token_create(actor=admin, source=Source.cli(), account=ci, name="gha", scopes=["read"])
    client.force_login(admin)
    before = last_seq()
    # The Revoke link asks first: the confirmation page changes nothing.
    assert f'href="/access/tokens/{record.pk}/revoke"' in text_of(client.get("/access/"))
    confirm = client.get(f"/access/tokens/{record.pk}/revoke")
    assert confirm.status_code == 200
    assert "Revoke the token gha?" in text_of(confirm) and 'id="revoke-form"' in text_of(confirm)
    record.refresh_from_db()
    assert not record.is_revoked and new_events(before) == []
    response = client.post(f"/access/tokens/{record.pk}/revoke", follow=True)
    assert response.redirect_chain == [("/access/", 302)]
    record.refresh_from_db()
    assert record.is_revoked and record.revoked_by == admin
    [event] = new_events(before)
    assert (event.action, event.source) == (Action.TOKEN_REVOKED, "web")
    assert '<span class="badge bad">revoked</span>' in response.content.decode()
    again = client.post(f"/access/tokens/{record.pk}/revoke", follow=True)
    assert shown_messages(again) == ["The token is already revoked."]
    assert client.post("/access/tokens/999999/revoke").status_code == 404


def access_index_queries(client, admin, tokens: int) -> int:
    for index in range(3):
        account = service_account_create(actor=admin, source=Source.cli(), name=f"ci-{tokens}-{index}")
        account.groups.add(Group.objects.get_or_create(name=f"team-{index}")[0])
    accounts = list(User.objects.filter(is_service_account=True))
    for index in range(tokens):
        token_create(
            actor=admin, source=Source.cli(), account=accounts[index % 3], name=f"t{index}", scopes=["read"]
        )
    token_create(actor=admin, source=Source.cli(), account=admin, name=f"own-{tokens}", scopes=["read"])
    client.force_login(admin)
    client.get("/access/")
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/access/")
    assert response.content.decode().count("Revoke…</a>") == ApiToken.objects.count()
    return len(captured)


def test_access_index_query_count_is_pinned(client, admin, django_assert_max_num_queries):
    assert access_index_queries(client, admin, 2) == access_index_queries(client, admin, 20)
    # session, user, service accounts, their teams (prefetch), their tokens with created_by and revoked_by
    # (prefetch), personal tokens of people, the team choices of the new account form (the token form's
    # account choices reuse the service accounts already loaded), the header's inbox badge
    with django_assert_max_num_queries(8):
        client.get("/access/")


# Grants on an asset ---------------------------------------------------------------------------------------


def test_admin_and_manager_see_the_grants_with_forms(client, admin, manager, viewer):
    for user in (admin, manager):
        client.force_login(user)
        response = client.get(GRANTS)
        assert response.status_code == 200
        body = response.content.decode()
        assert '<th scope="row">mia</th>' in body and '<th scope="row">vera</th>' in body
        assert 'id="grant-form"' in body and "Revoke…</a>" in body
        assert 'id="read-only"' not in body


def test_auditor_sees_the_grants_read_only_and_cannot_post(client, auditor, manager, person):
    client.force_login(auditor)
    body = client.get(GRANTS).content.decode()
    assert '<th scope="row">mia</th>' in body and 'id="read-only"' in body
    assert 'id="grant-form"' not in body and "Revoke…</a>" not in body
    before = last_seq()
    data = {"principal_type": "user", "principal": "pat", "role": "view"}
    assert client.post(f"{GRANTS}grants/add", data).status_code == 403
    data = {"principal_type": "user", "principal": "mia", "role": "manage"}
    assert client.post(f"{GRANTS}grants/remove", data).status_code == 403
    assert new_events(before) == [] and granted_roles(manager, manager_asset()) == {Role.MANAGE}


def manager_asset():
    from registry.models import Asset

    return Asset.objects.get(name="fraud")


def test_a_visible_asset_without_manage_is_403(client, viewer):
    client.force_login(viewer)
    assert client.get(GRANTS).status_code == 403
    data = {"principal_type": "user", "principal": "vera", "role": "manage"}
    assert client.post(f"{GRANTS}grants/add", data).status_code == 403
    assert granted_roles(viewer, manager_asset()) == {Role.VIEW}


@pytest.mark.parametrize("url", [GRANTS, "/access/assets/model/missing/", "/access/assets/robot/fraud/"])
def test_an_asset_that_is_not_visible_is_404(client, person, fraud, url):
    client.force_login(person)
    assert client.get(url).status_code == 404
    data = {"principal_type": "user", "principal": "pat", "role": "manage"}
    assert client.post(f"{url}grants/add", data).status_code == 404
    assert granted_roles(person, fraud) == set()


def test_grant_and_revoke_through_the_page(client, manager, person, fraud):
    client.force_login(manager)
    before = last_seq()
    data = {"principal_type": "user", "principal": "pat", "role": "contribute"}
    response = client.post(f"{GRANTS}grants/add", data, follow=True)
    assert response.redirect_chain == [(GRANTS, 302)]
    assert granted_roles(person, fraud) == {Role.CONTRIBUTE}
    assert shown_messages(response) == ["Granted contribute on model/fraud to user pat."]
    [added] = new_events(before)
    assert (added.action, added.source, added.actor_repr) == (Action.GRANT_ADDED, "web", "mia")
    assert added.changes == {"principal": "user:pat", "role": "contribute"}
    assert added.asset_id == fraud.pk

    # Revoke asks first: the confirmation page names the grant and changes nothing.
    query = "principal_type=user&principal=pat&role=contribute"
    assert f"grants/remove?{query.replace('&', '&amp;')}" in text_of(client.get(GRANTS))
    confirm = client.get(f"{GRANTS}grants/remove?{query}")
    assert confirm.status_code == 200 and "Revoke contribute from pat?" in text_of(confirm)
    assert granted_roles(person, fraud) == {Role.CONTRIBUTE}
    response = client.post(f"{GRANTS}grants/remove", data, follow=True)
    assert granted_roles(person, fraud) == set()
    assert shown_messages(response) == ["Revoked contribute on model/fraud from user pat."]
    [_, removed] = new_events(before)
    assert (removed.action, removed.source) == (Action.GRANT_REMOVED, "web")


def test_grant_to_a_team(client, admin, fraud):
    team = Group.objects.create(name="reviewers")
    client.force_login(admin)
    client.post(f"{GRANTS}grants/add", {"principal_type": "team", "principal": "reviewers", "role": "review"})
    assert fraud.assetgroupobjectpermission_set.get(group=team).permission.codename == "review_asset"
    assert '<th scope="row">reviewers</th>' in client.get(GRANTS).content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"principal_type": "user", "principal": "ghost", "role": "view"},
            "principal",
            "No account named 'ghost'.",
        ),
        (
            {"principal_type": "user", "principal": "", "role": "view"},
            "principal",
            "Enter a username or a team name.",
        ),
        (
            {"principal_type": "user", "principal": "mia", "role": "manage"},
            "principal",
            "already holds manage",
        ),
        ({"principal_type": "user", "principal": "ci-bot", "role": "review"}, "role", "can never review"),
        (
            {"principal_type": "user", "principal": "pat", "role": "owner"},
            "role",
            "Choose one of the roles in the list.",
        ),
    ],
)
def test_refused_grants_show_next_to_the_field_and_keep_the_input(
    client, manager, person, ci, data, field, message
):
    client.force_login(manager)
    before = last_seq()
    response = client.post(f"{GRANTS}grants/add", data)
    assert response.status_code in (400, 409)
    body = text_of(response)
    assert message in field_error(response, f"grant_{field}")
    assert f"{field}:" not in field_error(response, f"grant_{field}")  # no field jargon
    if data["principal"]:
        assert f'name="principal" value="{data["principal"]}"' in body  # what was typed is kept
    assert not shown_messages(response)  # not a banner at the top of the page
    assert new_events(before) == []


def test_revoking_a_grant_nobody_holds_is_a_message(client, manager):
    client.force_login(manager)
    data = {"principal_type": "user", "principal": "mia", "role": "review"}
    response = client.post(f"{GRANTS}grants/remove", data, follow=True)
    assert "does not hold review" in shown_messages(response)[0]


def grants_page_queries(client, admin, asset, grants: int) -> int:
    for index in range(grants):
        person = UserFactory(username=f"u{grants}-{index}")
        grant_add(actor=admin, source=Source.cli(), asset=asset, principal=person, role=Role.VIEW)
        team = Group.objects.create(name=f"t{grants}-{index}")
        grant_add(actor=admin, source=Source.cli(), asset=asset, principal=team, role=Role.CONTRIBUTE)
    client.force_login(admin)
    url = f"/access/assets/model/{asset.name}/"
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.content.decode().count("Revoke…</a>") == 2 * grants
    return len(captured)


def test_grants_page_query_count_is_pinned(client, admin, fraud, django_assert_max_num_queries):
    other = AssetFactory(name="other")
    assert grants_page_queries(client, admin, fraud, 2) == grants_page_queries(client, admin, other, 20)
    # session, user, the asset (visibility included), the reader's roles (for the selector's check),
    # user grants with users and permissions, team grants with teams and permissions, the reader's roles
    # again (may they change grants?)
    with django_assert_max_num_queries(7):
        client.get(GRANTS)


# Your own tokens -------------------------------------------------------------------------------------------

MINE = "/access/tokens/mine"


def shown_token(response) -> str:
    return re.search(r'id="new-token" class="secret" value="([^"]+)"', response.content.decode()).group(1)


def test_your_tokens_page_needs_a_sign_in(client):
    response = client.get(MINE)
    assert response.status_code == 302 and response["Location"].startswith(f"{LOGIN}?next=")


def test_a_person_makes_their_own_review_token_on_their_tokens_page(client, person):
    client.force_login(person)
    page = client.get(MINE)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'aria-current="page">Your tokens' in body
    assert 'value="review"' in body and 'value="manage"' not in body  # manage is for admins only
    before = last_seq()
    response = client.post(
        f"{MINE}/new", {"name": "laptop", "scopes": ["read", "review"], "expires_in_days": "30"}, follow=True
    )
    assert response.redirect_chain == [("/access/tokens/created", 302)]
    assert 'id="copy-token"' in text_of(response)  # a copy button (its script carries the CSP nonce)
    nonce = re.search(r'<script nonce="([^"]+)">', text_of(response)).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    token = shown_token(response)
    record = ApiToken.objects.get()
    assert (record.account, record.created_by, record.scopes) == (person, person, ["read", "review"])
    [event] = new_events(before)
    assert (event.action, event.source, event.context["credential"]) == (
        Action.TOKEN_CREATED,
        "web",
        {"kind": "session"},
    )
    client.logout()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["token_scopes"] == ["read", "review"]


def test_the_tokens_page_offers_manage_to_admins_only(client, admin, person):
    client.force_login(person)
    refused = client.post(f"{MINE}/new", {"name": "x", "scopes": ["manage"], "expires_in_days": "9"})
    assert refused.status_code == 400
    assert not ApiToken.objects.exists()
    client.force_login(admin)
    assert 'value="manage"' in client.get(MINE).content.decode()


def test_revoking_your_own_token_from_your_page(client, admin, person, ci):
    own, _ = token_create(actor=person, source=Source.cli(), account=person, name="own", scopes=["read"])
    other, _ = token_create(actor=admin, source=Source.cli(), account=ci, name="ci", scopes=["read"])
    client.force_login(person)
    assert client.get(MINE).content.decode().count("Revoke…</a>") == 1
    response = client.post(f"/access/tokens/{own.pk}/revoke", follow=True)
    assert response.redirect_chain == [(MINE, 302)]
    own.refresh_from_db()
    assert own.is_revoked and own.revoked_by == person
    assert client.post(f"/access/tokens/{other.pk}/revoke").status_code == 404  # not yours: not there
    other.refresh_from_db()
    assert not other.is_revoked


def test_an_auditor_sees_every_token_but_revokes_only_their_own(client, auditor, admin, ci):
    other, _ = token_create(actor=admin, source=Source.cli(), account=ci, name="ci", scopes=["read"])
    client.force_login(auditor)
    assert client.post(f"/access/tokens/{other.pk}/revoke").status_code == 403
    other.refresh_from_db()
    assert not other.is_revoked


def test_tokens_page_query_count_is_pinned(client, person, django_assert_max_num_queries):
    for index in range(5):
        token_create(actor=person, source=Source.cli(), account=person, name=f"t{index}", scopes=["read"])
    client.force_login(person)
    client.get(MINE)
    # session, user, the person's tokens with account, created_by and revoked_by (one join), the inbox badge
    with django_assert_max_num_queries(4):
        response = client.get(MINE)
    assert response.content.decode().count("Revoke…</a>") == 5


# The header ------------------------------------------------------------------------------------------------


def header_who(response) -> str:
    found = re.search(
        r'<div class="who">\s*<span class="name"[^>]*>(.*?)</span>\s*<a', text_of(response), re.S
    )
    return re.sub(r"<[^>]+>", "", found.group(1)).split() if found else []


@pytest.mark.parametrize(
    ("username", "first", "last", "role", "shown"),
    [
        ("admin", "", "", "admin", ["admin"]),  # not "admin admin"
        ("auditor", "", "", "auditor", ["auditor"]),
        ("root", "", "", "admin", ["root", "admin"]),  # the role as a small label
        ("ada", "Ada", "Lovelace", "", ["Ada", "Lovelace"]),  # the full name, once
        ("pat", "", "", "", ["pat"]),
    ],
)
def test_the_header_shows_one_clear_name(client, username, first, last, role, shown):
    client.force_login(UserFactory(username=username, first_name=first, last_name=last, global_role=role))
    assert header_who(client.get(MINE)) == shown
