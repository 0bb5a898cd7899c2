"""Separation of duties on credentials: who may mint which token, and the credential named in every event."""

import datetime as dt
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import ApiToken, GlobalRole, Scope, User
from accounts.services import token_create
from approvals.models import PromotionRequest, Review
from audit.models import AuditEvent
from core.source import Channel, Credential, CredentialKind, Source
from registry.models import AssetKind
from tests.factories import AssetFactory, PolicyFactory, ServiceAccountFactory, UserFactory, VersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """An admin, two reviewers (team `reviewers`, which holds review), a service account, a model with a
    production policy that needs two approvals from that team."""

    class W:
        pass

    w = W()
    w.admin = UserFactory(username="admin", global_role=GlobalRole.ADMIN)
    w.reviewers = Group.objects.create(name="reviewers")
    w.r1 = UserFactory(username="reviewer1")
    w.r2 = UserFactory(username="reviewer2")
    for reviewer in (w.r1, w.r2):
        reviewer.groups.add(w.reviewers)
    w.ci = ServiceAccountFactory(username="ci-bot")
    w.viewer = UserFactory(username="viewer")
    author = UserFactory(username="author")
    w.asset = AssetFactory(kind=AssetKind.MODEL, name="fraud")
    VersionFactory(asset=w.asset, created_by=author)
    VersionFactory(asset=w.asset, created_by=author)
    assign_perm("registry.review_asset", w.reviewers, w.asset)
    assign_perm("registry.contribute_asset", w.ci, w.asset)
    assign_perm("registry.view_asset", w.viewer, w.asset)
    policy = PolicyFactory(asset=w.asset, required_approvals=2)
    policy.reviewer_teams.set([w.reviewers])
    return w


def signed_in(user) -> APIClient:
    """An API client with a real session cookie, as a browser signed in at /accounts/login/ has."""
    client = APIClient()
    client.force_login(user)
    return client


def bearer(token: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def command_token(account, scopes, days=90):
    """A token made by an operator's command (no caller credential)."""
    return token_create(
        actor=None,
        source=Source.cli(),
        account=account,
        name="cmd",
        scopes=list(scopes),
        expires_in_days=days,
    )


def mint(client, account, scopes, days=90):
    body = {"account": account, "name": "minted", "scopes": list(scopes), "expires_in_days": days}
    return client.post("/api/v1/tokens", body, format="json")


def request_promotion(client):
    body = {"kind": "model", "name": "fraud", "version": 2, "stage": "production", "justification": "auc"}
    response = client.post("/api/v1/promotions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def context_of(event: AuditEvent) -> dict:
    """The context as the hashed body states it (the projection column must agree)."""
    stated = json.loads(bytes(event.body))["context"]
    assert stated == event.context
    return stated


# An admin cannot approve alone -----------------------------------------------------------------------------


def test_admin_cannot_mint_review_tokens_for_reviewers_and_approve_alone(world):
    admin = signed_in(world.admin)
    promotion_id = request_promotion(admin)
    events, tokens = AuditEvent.objects.count(), ApiToken.objects.count()

    for reviewer in ("reviewer1", "reviewer2"):
        response = mint(admin, reviewer, [Scope.READ, Scope.REVIEW])
        assert response.status_code == 403, response.content
        assert response.json()["type"] == "review-token-forbidden"
    # Nor with the admin's own manage token, which would otherwise carry the admin's authority.
    _, admin_token = command_token(world.admin, [Scope.READ, Scope.MANAGE])
    tokens += 1
    events += 1
    response = mint(bearer(admin_token), "reviewer1", [Scope.REVIEW])
    assert response.status_code == 403
    assert response.json()["type"] == "review-token-forbidden"

    assert ApiToken.objects.count() == tokens
    assert AuditEvent.objects.count() == events
    assert not Review.objects.exists()
    assert PromotionRequest.objects.get(pk=promotion_id).status == "pending"


def test_admin_may_still_give_a_person_a_token_without_review(world):
    response = mint(signed_in(world.admin), "reviewer1", [Scope.READ])
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    promotion_id = request_promotion(signed_in(world.admin))
    approve = bearer(token).post(f"/api/v1/promotions/{promotion_id}/approve", {}, format="json")
    assert approve.status_code == 403
    assert approve.json()["type"] == "insufficient-scope"


def test_a_person_creates_their_own_review_token_from_a_session(world):
    response = mint(signed_in(world.r1), "reviewer1", [Scope.READ, Scope.REVIEW], days=30)
    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["read", "review"]
    event = AuditEvent.objects.get(action="token.created")
    assert context_of(event)["credential"] == {"kind": "session"}


def test_review_token_is_never_made_with_a_token(world):
    # An admin who also reviews: the session may mint the admin's own review token, a token may not.
    world.admin.groups.add(world.reviewers)
    created = mint(signed_in(world.admin), "admin", [Scope.READ, Scope.REVIEW, Scope.MANAGE], days=30)
    assert created.status_code == 201, created.content
    events, tokens = AuditEvent.objects.count(), ApiToken.objects.count()
    # Within the calling token's scopes and expiry, so only the credential rule refuses it.
    response = mint(bearer(created.json()["token"]), "admin", [Scope.REVIEW], days=7)
    assert response.status_code == 403
    assert response.json()["type"] == "review-token-forbidden"
    assert "session" in response.json()["detail"]
    assert (AuditEvent.objects.count(), ApiToken.objects.count()) == (events, tokens)


def test_review_token_refused_for_someone_else_at_the_service(world):
    session = Source(channel=Channel.WEB, credential=Credential(kind=CredentialKind.SESSION))
    from core.exceptions import Forbidden

    with pytest.raises(Forbidden):
        token_create(actor=world.admin, source=session, account=world.r1, name="x", scopes=[Scope.REVIEW])
    with pytest.raises(Forbidden):  # the person's own call, but without a session: a command or a task
        token_create(actor=world.r1, source=Source.cli(), account=world.r1, name="x", scopes=[Scope.REVIEW])
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_create_token_command_refuses_review_for_a_person(world):
    with pytest.raises(CommandError, match="review"):
        call_command("create_token", "reviewer1", "--scopes", "read", "review")
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.exists()
    call_command("create_token", "reviewer1", "--scopes", "read")  # without review it still works
    assert ApiToken.objects.get().scopes == ["read"]


# Tokens mint only within themselves ------------------------------------------------------------------------


def test_manage_only_day_token_cannot_mint_a_stronger_longer_token(world):
    record, token = command_token(world.admin, [Scope.MANAGE], days=1)
    events = AuditEvent.objects.count()
    response = mint(bearer(token), "ci-bot", [Scope.READ, Scope.WRITE, Scope.PROMOTE], days=365)
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["type"] == "token-exceeds-credential"
    assert body["errors"][0]["field"] == "scopes"
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [record.pk]
    assert AuditEvent.objects.count() == events
    assert not world.ci.tokens.exists()


def test_token_may_mint_a_subset_that_expires_sooner(world):
    _, token = command_token(world.admin, [Scope.READ, Scope.WRITE, Scope.PROMOTE, Scope.MANAGE], days=30)
    caller = bearer(token)
    response = mint(caller, "ci-bot", [Scope.READ, Scope.WRITE], days=7)
    assert response.status_code == 201, response.content
    minted = ApiToken.objects.get(pk=response.json()["id"])
    assert (minted.account, minted.scopes) == (world.ci, ["read", "write"])
    assert bearer(response.json()["token"]).get("/api/v1/models/fraud").status_code == 200

    too_long = mint(caller, "ci-bot", [Scope.READ], days=31)
    assert too_long.status_code == 403
    assert too_long.json()["errors"][0]["field"] == "expires_in_days"
    assert "29 days" in too_long.json()["detail"]
    as_long = mint(caller, "ci-bot", [Scope.READ], days=30)  # minted later, so it would outlive its maker
    assert as_long.status_code == 403
    assert ApiToken.objects.filter(account=world.ci).count() == 1


def test_manage_only_token_may_mint_manage_for_a_shorter_time(world):
    _, token = command_token(world.admin, [Scope.MANAGE], days=30)
    response = mint(bearer(token), "ci-bot", [Scope.MANAGE], days=10)
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="token.created", target_id=str(response.json()["id"]))
    maker = ApiToken.objects.get(account=world.admin)
    assert context_of(event)["credential"] == {
        "kind": "token",
        "token_id": maker.pk,
        "token_prefix": f"mgr_{maker.lookup}",
    }


def test_revoked_calling_token_mints_nothing(world):
    record, _ = command_token(world.admin, [Scope.MANAGE], days=30)
    calling = Source(channel=Channel.API, credential=Credential(CredentialKind.TOKEN, record.pk, "mgr_x"))
    ApiToken.objects.filter(pk=record.pk).update(revoked_at=timezone.now())
    from core.exceptions import Forbidden

    with pytest.raises(Forbidden):
        token_create(actor=world.admin, source=calling, account=world.ci, name="x", scopes=[Scope.MANAGE])
    ApiToken.objects.filter(pk=record.pk).update(
        revoked_at=None, expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with pytest.raises(Forbidden):
        token_create(actor=world.admin, source=calling, account=world.ci, name="x", scopes=[Scope.MANAGE])
    assert ApiToken.objects.count() == 1


# The credential in every event -----------------------------------------------------------------------------


def test_approval_events_name_the_token_that_approved(world):
    promotion_id = request_promotion(signed_in(world.admin))
    for reviewer in ("reviewer1", "reviewer2"):
        user = User.objects.get(username=reviewer)
        minted = mint(signed_in(user), reviewer, [Scope.READ, Scope.REVIEW], days=30)
        assert minted.status_code == 201, minted.content
        approve = bearer(minted.json()["token"]).post(
            f"/api/v1/promotions/{promotion_id}/approve", {"comment": "ok"}, format="json"
        )
        assert approve.status_code == 200, approve.content
    assert PromotionRequest.objects.get(pk=promotion_id).status == "applied"

    approvals = AuditEvent.objects.filter(action="promotion.approved").order_by("seq")
    for event, reviewer in zip(approvals, ("reviewer1", "reviewer2"), strict=True):
        token = ApiToken.objects.get(account__username=reviewer)
        assert event.actor_repr == reviewer
        assert context_of(event)["credential"] == {
            "kind": "token",
            "token_id": token.pk,
            "token_prefix": f"mgr_{token.lookup}",
        }
    requested = AuditEvent.objects.get(action="promotion.requested")
    assert context_of(requested)["credential"] == {"kind": "session"}


def test_web_events_name_the_session(world, client):
    password = "a-long-password-123"
    world.admin.set_password(password)
    world.admin.save()
    client.post("/accounts/login/", {"username": "admin", "password": password})
    response = client.post("/access/service-accounts/new", {"name": "ci-two"})
    assert response.status_code == 302
    for action in ("login.succeeded", "account.created"):
        event = AuditEvent.objects.get(action=action)
        assert event.source == "web"
        assert context_of(event)["credential"] == {"kind": "session"}
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": "admin", "password": "wrong"})
    assert context_of(AuditEvent.objects.get(action="logout"))["credential"] == {"kind": "session"}
    assert "credential" not in context_of(AuditEvent.objects.get(action="login.failed"))


def test_commands_and_tasks_have_no_credential(world):
    call_command("create_token", "ci-bot", "--scopes", "read")
    assert "credential" not in context_of(AuditEvent.objects.get(action="token.created"))
    assert Source.task().credential is None


def test_credential_of_request_is_duck_typed():
    factory = RequestFactory()
    anonymous = factory.get("/")
    assert Credential.of_request(anonymous) is None

    class Token:
        PREFIX = "mgr"
        pk = 7
        lookup = "abcdefghijkl"

    with_token = factory.get("/")
    with_token.auth, with_token.user = Token(), User(username="x")
    assert Source.from_request(with_token, Channel.API).context()["credential"] == {
        "kind": "token",
        "token_id": 7,
        "token_prefix": "mgr_abcdefghijkl",
    }
    with_session = factory.get("/")
    with_session.user = User(username="x")
    assert Source.from_request(with_session, Channel.WEB).credential == Credential(CredentialKind.SESSION)


# Existence is not told to those who may not act ------------------------------------------------------------


def _same_refusal(first, second):
    assert first.status_code == second.status_code == 403
    assert first.json() == second.json()


def test_token_creation_for_another_account_does_not_tell_whether_it_exists(world):
    viewer = signed_in(world.viewer)
    _same_refusal(mint(viewer, "reviewer1", [Scope.READ]), mint(viewer, "no-such-person", [Scope.READ]))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(("principal_type", "existing"), [("user", "reviewer1"), ("team", "reviewers")])
def test_grant_routes_do_not_tell_whether_a_principal_exists(world, principal_type, existing):
    viewer = signed_in(world.viewer)  # sees the asset, may not change its grants

    def grant(name):
        body = {"principal_type": principal_type, "principal": name, "role": "view"}
        return viewer.post("/api/v1/models/fraud/permissions", body, format="json")

    def revoke(name):
        return viewer.delete(f"/api/v1/models/fraud/permissions/{principal_type}/{name}/review")

    _same_refusal(grant(existing), grant("no-such-name"))
    _same_refusal(revoke(existing), revoke("no-such-name"))
    assert not AuditEvent.objects.exists()


def test_service_account_creation_does_not_tell_whether_a_team_exists(world):
    viewer = signed_in(world.viewer)

    def create(team):
        return viewer.post("/api/v1/service-accounts", {"name": "ci-two", "team": team}, format="json")

    _same_refusal(create("reviewers"), create("no-such-team"))
    unknown = signed_in(world.admin).post(
        "/api/v1/service-accounts", {"name": "ci-two", "team": "no-such-team"}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == [{"field": "team", "message": "no team named 'no-such-team'"}]
    assert not User.objects.filter(username="ci-two").exists()
    created = signed_in(world.admin).post(
        "/api/v1/service-accounts", {"name": "ci-two", "team": "reviewers"}, format="json"
    )
    assert created.status_code == 201 and created.json()["teams"] == ["reviewers"]
