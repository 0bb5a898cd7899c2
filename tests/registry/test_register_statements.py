"""What one registration costs the database, and that the one-statement path (PostgreSQL) keeps every answer
of the step-by-step path (SQLite): 404, 403, 409 and 400 in the same order, nothing changed on refusal."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Scope
from audit.models import AuditEvent
from registry.models import Asset, AssetVersion
from tests.factories import AssetFactory, ServiceAccountFactory, TeamFactory, TokenFactory, UserFactory, grant
from tests.helpers import api_client, verify_chain

pytestmark = pytest.mark.django_db

BODY = {"digest": "sha256:" + "a" * 64, "metrics": {"auc": 0.9}}


def _body(n: int) -> dict:
    return {"digest": f"sha256:{n:064x}", "metrics": {"auc": 0.9}}


@pytest.fixture
def bench_model(db):
    return AssetFactory(name="bench-model")


@pytest.fixture
def ci(bench_model):
    account = ServiceAccountFactory(username="ci")
    grant(account, bench_model, "contribute", "request_promotion")
    token = TokenFactory(account=account, scopes=[Scope.READ, Scope.WRITE], last_used_at=timezone.now())
    return api_client(token=token.token)


@pytest.mark.postgres
def test_a_registration_is_three_statements_on_postgresql(ci, django_assert_num_queries):
    # The token and its account; the asset locked with the caller's grants, the version inserted and the
    # latest number moved (one statement); the audit append, which also asks whether a webhook subscription
    # could want the event (one). Around them the test's SAVEPOINT and RELEASE, which are BEGIN and COMMIT
    # outside the test's transaction: 5 round trips in production.
    with django_assert_num_queries(5) as captured:
        assert ci.post("/api/v1/models/bench-model/versions", BODY, format="json").status_code == 201
    statements = [query["sql"].split()[0] for query in captured.captured_queries]
    assert statements == ["SELECT", "SAVEPOINT", "WITH", "SELECT", "RELEASE"]


def test_registrations_number_without_gaps_and_audit_each(ci, bench_model):
    for n in range(3):
        response = ci.post("/api/v1/models/bench-model/versions", _body(n), format="json")
        assert response.status_code == 201, response.content
        assert response.json()["version"] == n + 1
    bench_model.refresh_from_db()
    assert bench_model.latest_version_number == 3
    assert list(AssetVersion.objects.values_list("number", flat=True).order_by("number")) == [1, 2, 3]
    events = AuditEvent.objects.filter(action="version.created").order_by("seq")
    assert [event.changes["after"]["number"] for event in events] == [1, 2, 3]
    assert events[0].target_repr == "model/bench-model@1"
    assert verify_chain() is None


def _as(user):
    return api_client(user)


def _unchanged(asset):
    asset.refresh_from_db()
    return asset.latest_version_number == 0 and not AssetVersion.objects.exists()


@pytest.mark.parametrize("body", [BODY, {"digest": "nope"}, {"digest": BODY["digest"], "nope": 1}])
def test_refusals_keep_their_order(bench_model, body):
    outsider, viewer, auditor = UserFactory(), UserFactory(), UserFactory(global_role="auditor")
    grant(viewer, bench_model, "view")
    grant(auditor, bench_model, "manage")  # counts as view only
    url = "/api/v1/models/bench-model/versions"
    # Not visible: 404, whatever the body.
    assert _as(outsider).post(url, body, format="json").status_code == 404
    assert _as(outsider).post("/api/v1/models/none/versions", body, format="json").status_code == 404
    # Visible without contribute: 403, before the content checks' 400 (the serializer's 400 comes first).
    for user in (viewer, auditor):
        status = _as(user).post(url, body, format="json").status_code
        assert status == (400 if "nope" in body else 403)
    assert _unchanged(bench_model)


def test_archived_is_409_after_the_role_check(bench_model):
    viewer, manager = UserFactory(), UserFactory()
    grant(viewer, bench_model, "view")
    grant(manager, bench_model, "manage")
    Asset.objects.filter(pk=bench_model.pk).update(archived_at=timezone.now() - dt.timedelta(days=1))
    url = "/api/v1/models/bench-model/versions"
    assert _as(viewer).post(url, BODY, format="json").status_code == 403
    response = _as(manager).post(url, BODY, format="json")
    assert response.status_code == 409 and response.json()["type"].endswith("asset-archived")
    assert _unchanged(bench_model)


def test_team_grants_and_admins_register(bench_model):
    team = TeamFactory()
    member = UserFactory()
    member.groups.add(team)
    grant(team, bench_model, "contribute")
    admin = UserFactory(global_role="admin")
    url = "/api/v1/models/bench-model/versions"
    assert _as(member).post(url, _body(1), format="json").status_code == 201
    assert _as(admin).post(url, _body(2), format="json").status_code == 201
    assert bench_model.versions.count() == 2


CONTENT = {  # every column a registration fills, with values other than the defaults, and with the defaults
    "model": [
        {"digest": "sha256:" + "b" * 64},
        {"digest": "sha256:" + "c" * 64, "metrics": {}, "tags": [], "description": "", "uri": ""},
        {
            "digest": "sha256:" + "d" * 64,
            "description": "d",
            "tags": ["a", "b"],
            "uri": "s3://x",
            "metadata": {"k": [1, None, "é"]},
            "origin": {"commit": "abc1234"},
            "framework": "sklearn",
            "metrics": {"auc": 0.9, "n": 3},
            "params": {"depth": 4},
            "signature": {"inputs": []},
            "model_card": "# Card",
        },
    ],
    "dataset": [
        {"digest": "sha256:" + "e" * 64, "uri": "s3://d", "row_count": None},
        {"digest": "sha256:" + "f" * 64, "uri": "s3://d", "row_count": 0, "schema": {"a": "int"}},
    ],
    "prompt": [
        {"template": "Hi {who}", "model_config": {}, "commit_message": ""},
        {"template": "Hi {who}", "model_config": {"temperature": 0}, "commit_message": "first"},
    ],
}


@pytest.mark.parametrize("kind", list(CONTENT))
def test_the_stored_version_is_the_one_answered(kind):
    # On PostgreSQL the columns that hold their default are literals in the statement, the others
    # parameters: either way the row holds what the service answered (and SQLite's ORM path stores).
    from core.source import Source
    from registry.services import version_register

    actor = ServiceAccountFactory()
    asset = AssetFactory(kind=kind, name=f"a-{kind}")
    grant(actor, asset, "contribute")
    for data in CONTENT[kind]:
        version = version_register(actor=actor, source=Source.cli(), asset=asset, data=dict(data))
        stored = AssetVersion.objects.get(pk=version.pk)
        for field in AssetVersion._meta.concrete_fields:
            answered, kept = getattr(version, field.attname), getattr(stored, field.attname)
            assert (type(kept), kept) == (type(answered), answered), field.attname
        for name, value in data.items():
            if name != "digest" or kind != "prompt":
                assert getattr(stored, name) == value, name
