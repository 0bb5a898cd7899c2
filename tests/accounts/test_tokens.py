"""API tokens: stored only as a hash, refused when expired, revoked, malformed or out of scope."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm
from rest_framework.test import APIClient

from accounts.models import ApiToken, Scope
from accounts.services import token_create, token_revoke
from audit.models import AuditEvent
from core.source import Source
from tests.factories import AssetFactory, ServiceAccountFactory, UserFactory, VersionFactory, digest_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ci():
    return ServiceAccountFactory(username="ci")


@pytest.fixture
def asset(ci):
    asset = AssetFactory(name="fraud")
    VersionFactory(asset=asset)
    assign_perm("registry.contribute_asset", ci, asset)
    return asset


def bearer(token):
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def make(account, scopes=(Scope.READ, Scope.WRITE), days=90):
    return token_create(
        actor=None, source=Source.cli(), account=account, name="t", scopes=list(scopes), expires_in_days=days
    )


def problem_type(response):
    return response.json()["type"]


def test_token_reads_and_writes_within_its_scopes(ci, asset):
    _, token = make(ci)
    client = bearer(token)
    assert client.get("/api/v1/models/fraud").status_code == 200
    response = client.post("/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json")
    assert response.status_code == 201, response.content
    assert AuditEvent.objects.filter(action="version.created").get().actor_kind == "service_account"
    assert ApiToken.objects.get().last_used_at is not None


def test_no_plaintext_in_any_table(ci, asset):
    _, token = make(ci)
    secret = token.split("_")[2]
    bearer(token).get("/api/v1/models/fraud")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                text = " ".join(
                    bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v) for v in row
                )
                assert secret not in text, f"token secret found in {table}"
                assert token not in text, f"token found in {table}"


@pytest.mark.parametrize(
    ("header", "expected_type"),
    [
        ("Bearer mgr_short_x", "token-invalid"),
        ("Bearer not-a-token", "token-invalid"),
        ("Bearer mgr_abcdefghijkl_wrongsecret", "token-invalid"),
    ],
)
def test_malformed_and_unknown_tokens_are_401(ci, asset, header, expected_type):
    response = APIClient(HTTP_AUTHORIZATION=header).get("/api/v1/models/fraud")
    assert response.status_code == 401
    assert problem_type(response) == expected_type
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_secret_for_a_real_lookup_is_401(ci, asset):
    _, token = make(ci)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert problem_type(bearer(forged).get("/api/v1/models/fraud")) == "token-invalid"


def test_expired_token_is_401_and_changes_nothing(ci, asset):
    record, token = make(ci)
    ApiToken.objects.filter(pk=record.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    before = AuditEvent.objects.count()
    response = bearer(token).post("/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json")
    assert response.status_code == 401
    assert problem_type(response) == "token-expired"
    assert AuditEvent.objects.count() == before
    assert asset.versions.count() == 1


def test_revoked_token_is_401(ci, asset):
    record, token = make(ci)
    assert bearer(token).get("/api/v1/models/fraud").status_code == 200
    token_revoke(actor=None, source=Source.cli(), token=record)
    response = bearer(token).get("/api/v1/models/fraud")
    assert response.status_code == 401
    assert problem_type(response) == "token-revoked"


def test_wrong_scope_is_403(ci, asset):
    _, token = make(ci, scopes=[Scope.READ])
    response = bearer(token).post("/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json")
    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    _, write_only = make(ci, scopes=[Scope.WRITE])
    assert bearer(write_only).get("/api/v1/models/fraud").status_code == 403


def test_token_loses_what_its_account_loses_at_once(ci, asset):
    _, token = make(ci)
    client = bearer(token)
    assert (
        client.post("/api/v1/models/fraud/versions", {"digest": digest_for("a")}, format="json").status_code
        == 201
    )
    remove_perm("registry.contribute_asset", ci, asset)
    assert (
        client.post("/api/v1/models/fraud/versions", {"digest": digest_for("b")}, format="json").status_code
        == 404
    )
    ci.is_active = False
    ci.save()
    assert client.get("/api/v1/models").status_code == 401


def test_token_cannot_exceed_its_account(ci):
    AssetFactory(name="other")
    _, token = make(ci, scopes=[Scope.READ, Scope.WRITE, Scope.PROMOTE, Scope.MANAGE])
    client = bearer(token)
    assert client.get("/api/v1/models/other").status_code == 404
    assert client.post("/api/v1/models", {"name": "new"}, format="json").status_code == 403
    assert client.post("/api/v1/service-accounts", {"name": "x"}, format="json").status_code == 403


def test_service_account_cannot_sign_in_with_a_password(client, ci):
    ci.set_password("a-password-123")
    ci.save()
    response = client.post("/accounts/login/", {"username": "ci", "password": "a-password-123"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert (
        APIClient().get("/api/v1/me", HTTP_AUTHORIZATION="Basic Y2k6YS1wYXNzd29yZC0xMjM=").status_code == 401
    )


def test_token_api_shows_token_once(ci, admin):
    client = APIClient()
    client.force_authenticate(admin)
    created = client.post(
        "/api/v1/tokens", {"account": "ci", "name": "deploy", "scopes": ["read"]}, format="json"
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("mgr_")
    listed = client.get("/api/v1/tokens").json()["results"]
    assert "token" not in listed[0]
    assert listed[0]["last4"] == token[-4:]
    assert bearer(token).get("/api/v1/me").json()["username"] == "ci"
    revoked = client.post(f"/api/v1/tokens/{created.json()['id']}/revoke", {}, format="json")
    assert revoked.json()["revoked_at"] is not None
    assert [e.action for e in AuditEvent.objects.order_by("seq")] == ["token.created", "token.revoked"]


@pytest.mark.parametrize("days", [0, 366])
def test_expiry_must_be_bounded(ci, days):
    from core.exceptions import InvalidInput

    with pytest.raises(InvalidInput):
        make(ci, days=days)


def test_create_token_command_prints_only_the_token(ci, capsys):
    call_command("create_token", "ci", "--scopes", "read", "promote", "--expires-days", "7")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    token = out.strip()
    assert bearer(token).get("/api/v1/me").json()["token_scopes"] == ["promote", "read"]


def test_service_account_tokens_never_carry_review(ci):
    from core.exceptions import InvalidInput

    with pytest.raises(InvalidInput):
        make(ci, scopes=[Scope.READ, Scope.REVIEW])


def test_admin_sign_in_goes_through_the_product_sign_in(client):
    response = client.get("/admin/login/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_http_basic_is_not_accepted(ci):
    from base64 import b64encode

    UserFactory(username="pat", password="a-long-password-123")
    header = "Basic " + b64encode(b"pat:a-long-password-123").decode()
    assert APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=header).status_code == 401
