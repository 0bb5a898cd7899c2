"""Cross-cutting behaviour: error shapes, health checks, offline API docs, ETag matching, demo data."""

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from accounts.models import ApiToken, User
from audit.models import AuditEvent
from core.http import etag_matches
from registry.models import Asset, AssetVersion, LineageEdge, StagePointer

pytestmark = pytest.mark.django_db


def test_unknown_api_path_is_a_problem(api):
    response = api.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "not-found"


def test_invalid_cursor_is_400(api):
    response = api.get("/api/v1/models?cursor=garbage")
    assert response.status_code == 400
    assert response.json()["type"] == "invalid-cursor"


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ok",
        "database": "ok",
        "audit_signing": "ok",
        "outbox": "ok",
    }


def test_api_docs_are_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html


def test_request_id_is_echoed(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    assert len(client.get("/healthz", HTTP_X_REQUEST_ID="bad id!")["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"v1"', True), ('W/"v1"', True), ('"v0", "v1"', True), ("*", True), ('"v2"', False), ("", False)],
)
def test_etag_matching(header, matches):
    request = RequestFactory().get("/", HTTP_IF_NONE_MATCH=header)
    assert etag_matches(request, '"v1"') is matches


def test_demo_data_is_idempotent(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo")
    first = capsys.readouterr().out
    counts = [
        Asset.objects.count(),
        AssetVersion.objects.count(),
        LineageEdge.objects.count(),
        StagePointer.objects.count(),
        AuditEvent.objects.count(),
        ApiToken.objects.count(),
    ]
    call_command("load_demo")
    second = capsys.readouterr().out
    assert counts == [
        Asset.objects.count(),
        AssetVersion.objects.count(),
        LineageEdge.objects.count(),
        StagePointer.objects.count(),
        AuditEvent.objects.count(),
        ApiToken.objects.count(),
    ]
    assert first == second
    assert "Admin login: admin / admin-demo-password" in first
    # 2 datasets, 2 models, 1 prompt; 3+1 + 3+2 + 3 versions; two in staging, two in production.
    assert counts[:4] == [5, 11, 5, 4]
    token = first.split("CI token for ci-bot: ")[1].strip()
    assert User.objects.get(username="ci-bot").is_service_account
    from rest_framework.test import APIClient

    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    names = {asset["name"] for asset in client.get("/api/v1/models").json()["results"]}
    assert names == {"fraud-detector", "churn-predictor"}


def test_a_compiled_query_refuses_a_build_that_reads_values_of_its_own(db):
    """Compiled once, a query must take every changing value as a parameter: one that reads the clock
    itself would run for ever with the first instant. Two compilations with different stand-ins show it."""
    from django.utils import timezone

    from core.compiled import CompiledQuery
    from tests.factories import UserFactory

    user = UserFactory()
    User = type(user)
    reads_the_clock = CompiledQuery(
        lambda *, user: User.objects.filter(pk=user.pk, date_joined__lt=timezone.now())
    )
    with pytest.raises(ValueError, match=r"comes from|depends on"):
        reads_the_clock.objects("shape", {"user": user})
    takes_it = CompiledQuery(lambda *, user, now: User.objects.filter(pk=user.pk, date_joined__lt=now))
    later = timezone.now() + timezone.timedelta(days=1)
    assert takes_it.objects("shape", {"user": user}, now=later) == [user]
    assert takes_it.objects("shape", {"user": user}, now=user.date_joined) == []  # the instant is a parameter
    other = UserFactory()
    assert takes_it.objects("shape", {"user": other}, now=later) == [other]  # so is the user's id


def test_a_compiled_query_takes_lists_for_in_compiled_once_per_length(db, django_assert_num_queries):
    """A list value (for `__in`) is a parameter per item; each length is its own compilation."""
    from core.compiled import CompiledQuery
    from tests.factories import UserFactory

    people = [UserFactory(username=f"p{index}") for index in range(4)]
    User = type(people[0])
    builds = []

    def build(*, ids, name):
        builds.append(len(ids))
        return User.objects.filter(pk__in=ids).exclude(username=name).order_by("pk").values_list("username")

    among = CompiledQuery(build)
    first, second, third, fourth = (person.pk for person in people)
    assert among.rows("", {}, ids=[first, second], name="p0") == [("p1",)]
    assert among.rows("", {}, ids=[third, fourth], name="nobody") == [("p2",), ("p3",)]
    assert among.rows("", {}, ids=(first, third, fourth), name="p3") == [("p0",), ("p2",)]
    assert among.rows("", {}, ids=[fourth, fourth], name="") == [("p3",)]  # a repeated item is harmless
    assert builds == [2, 2, 3, 3]  # twice per length (stand-ins told from constants), then never again
    with django_assert_num_queries(1):
        assert among.rows("", {}, ids=[second, first], name="p9") == [("p0",), ("p1",)]
