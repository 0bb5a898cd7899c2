"""Single sign-on for people with the local OIDC issuer (tests/oidc_issuer.py): the authorization code flow
with PKCE through the sign-in pages, accounts made on first sign-in, groups mapped to teams at every sign-in,
and password sign-in switched off."""

import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.core.cache import cache

from accounts import sso
from accounts.models import ExternalIdentity, User
from approvals.requirements import counted_approvals, requirements_for
from approvals.services import promotion_approve, promotion_request
from audit.models import AuditEvent
from core.source import Source
from tests.factories import UserFactory
from tests.helpers import World
from tests.oidc_issuer import SSO_CLIENT_ID, SSO_CLIENT_SECRET, new_key, person_claims

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(settings, oidc_issuer):
    cache.clear()  # failed sign-ins of earlier tests count against 127.0.0.1
    settings.SSO_OIDC_ISSUER = oidc_issuer.url
    settings.SSO_OIDC_CLIENT_ID = SSO_CLIENT_ID
    settings.SSO_OIDC_CLIENT_SECRET = SSO_CLIENT_SECRET
    settings.SSO_OIDC_SCOPES = "openid email profile groups"
    settings.SSO_GROUP_TEAMS = ["registry-reviewers=reviewers", "ml-platform=platform"]
    sso.forget_clients()
    yield oidc_issuer
    sso.forget_clients()
    cache.clear()


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(client, issuer, claims, next_url="/promotions/"):
    """The browser's round trip: the registry sends it to the provider, which signs `claims` in and sends it
    back with a code; returns the registry's answer to that."""
    start = client.get(f"/accounts/sso/login?next={urllib.parse.quote(next_url)}")
    assert start.status_code == 302, start.content
    issuer.person = claims
    try:
        urllib.request.build_opener(_Stay).open(start["Location"], timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302
        back = urllib.parse.urlsplit(answer.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def actions():
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def test_first_sign_in_creates_the_person_with_the_mapped_teams(client, provider):
    response = sign_in(client, provider, person_claims())
    assert response.status_code == 302 and response["Location"] == "/promotions/"
    rita = User.objects.get(username="rita")
    assert not rita.has_usable_password() and not rita.is_service_account
    assert rita.email == "rita@example.com" and rita.get_full_name() == "Rita Reviewer"
    assert sorted(rita.groups.values_list("name", flat=True)) == ["reviewers"]
    assert ExternalIdentity.objects.get(user=rita).subject == "00u1rita"
    assert actions()[-3:] == ["account.created", "team.member_added", "login.succeeded"]
    added = AuditEvent.objects.get(action="team.member_added")
    assert added.actor_kind == "system" and added.source == "web"
    assert added.changes["reason"] == "single sign-on: the groups claim includes registry-reviewers"
    signed_in = AuditEvent.objects.get(action="login.succeeded")
    assert signed_in.changes["method"] == "sso" and signed_in.changes["created"] is True
    assert client.get("/promotions/").status_code == 200  # signed in
    # PKCE: the authorization asked for an S256 challenge, and the code came back with its verifier.
    (token_request,) = provider.token_requests
    assert token_request["grant_type"] == "authorization_code" and len(token_request["code_verifier"]) >= 43


def test_a_later_sign_in_without_the_group_removes_the_membership_and_the_approval_stops_counting(
    client, provider
):
    world = World()
    sign_in(client, provider, person_claims())
    rita = User.objects.get(username="rita")
    promotion = promotion_request(
        actor=world.ci,
        source=Source.cli(),
        asset=world.asset,
        version=world.v2,
        stage=world.production,
        justification="better auc",
    )
    promotion_approve(actor=rita, source=Source.cli(), promotion_id=promotion.pk)
    requirements, _ = requirements_for(promotion)
    assert [review.reviewer for review in counted_approvals(promotion, requirements)] == [rita]

    client.logout()
    response = sign_in(client, provider, person_claims(groups=["everyone", "ml-platform"]))
    assert response.status_code == 302
    assert sorted(rita.groups.values_list("name", flat=True)) == ["platform"]
    removed = AuditEvent.objects.get(action="team.member_removed")
    assert removed.changes["team"] == "reviewers" and removed.changes["user"] == "rita"
    assert removed.changes["reason"] == "single sign-on: the groups claim lacks registry-reviewers"
    assert counted_approvals(promotion, requirements) == []
    assert User.objects.filter(username="rita").count() == 1  # the same account, found by its subject


def test_teams_not_in_the_mapping_are_left_alone(client, provider):
    sign_in(client, provider, person_claims())
    rita = User.objects.get(username="rita")
    rita.groups.create(name="hand-made")
    client.logout()
    sign_in(client, provider, person_claims())
    assert sorted(rita.groups.values_list("name", flat=True)) == ["hand-made", "reviewers"]
    assert actions().count("team.member_added") == 1  # nothing changed the second time


def test_an_existing_account_is_not_taken_over(client, provider, settings):
    UserFactory(username="rita", password="rita-password")
    response = sign_in(client, provider, person_claims())
    assert response.status_code == 403
    assert "exists already" in response.content.decode()
    failed = AuditEvent.objects.get(action="login.failed")
    assert failed.changes == {"username": "rita", "reason": "sso: sso-account-conflict"}
    assert not ExternalIdentity.objects.exists()
    settings.SSO_LINK_EXISTING_ACCOUNTS = True
    assert sign_in(client, provider, person_claims()).status_code == 302
    assert ExternalIdentity.objects.get().user.username == "rita"


def test_a_disabled_account_cannot_sign_in(client, provider):
    sign_in(client, provider, person_claims())
    User.objects.filter(username="rita").update(is_active=False)
    client.logout()
    response = sign_in(client, provider, person_claims())
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="login.failed").count() == 1
    assert client.get("/promotions/").status_code == 302  # to the sign-in page


def test_a_forged_id_token_signs_nobody_in(client, provider):
    provider.sso_key = new_key()
    response = sign_in(client, provider, person_claims())
    assert response.status_code == 400
    assert not User.objects.filter(username="rita").exists()
    assert AuditEvent.objects.get(action="login.failed").changes["reason"] == "sso: BadSignatureError"


def test_a_callback_without_the_sessions_state_signs_nobody_in(client, provider):
    response = client.get("/accounts/sso/callback?code=stolen&state=made-up")
    assert response.status_code == 400
    assert not User.objects.filter(username="rita").exists()
    assert actions()[-1] == "login.failed"


def test_an_unsafe_next_is_not_followed(client, provider):
    response = sign_in(client, provider, person_claims(), next_url="https://evil.example.org/")
    assert response["Location"] == "/"


def test_sso_pages_answer_404_when_not_configured(client):
    assert client.get("/accounts/sso/login").status_code == 404
    assert client.get("/accounts/sso/callback").status_code == 404
    assert "sso-sign-in" not in client.get("/accounts/login/").content.decode()


def test_passwords_can_be_switched_off(client, provider, settings):
    UserFactory(username="pat", password="pat-password-1")
    settings.PASSWORD_SIGN_IN = False
    page = client.get("/accounts/login/").content.decode()
    assert "sso-sign-in" in page and 'name="password"' not in page
    response = client.post("/accounts/login/", {"username": "pat", "password": "pat-password-1"})
    assert response.status_code == 200 and "switched off" in response.content.decode()
    assert AuditEvent.objects.get(action="login.failed").changes["reason"] == "password-sign-in-off"
    assert client.get("/promotions/").status_code == 302  # not signed in
    assert sign_in(client, provider, person_claims()).status_code == 302  # single sign-on still works


def test_failed_callbacks_are_rate_limited_like_passwords(client, provider, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(6):
        assert client.get("/accounts/sso/callback?code=x&state=made-up").status_code == 400
    assert actions().count("login.failed") == 3
    assert AuditEvent.objects.filter(action="login.locked").exists()


def test_an_unreachable_provider_is_said_so(client, provider):
    provider.stop()
    response = client.get("/accounts/sso/login")
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()
