"""The trust policy pages (admins): list, create, edit, delete, each change audited through the services."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import TrustPolicy
from audit.models import AuditEvent
from tests.factories import ServiceAccountFactory

pytestmark = pytest.mark.django_db
LIST = "/access/trust-policies/"
NEW = "/access/trust-policies/new"
FORM = {
    "name": "fraud-main",
    "provider": "github",
    "issuer": "",
    "audience": "https://registry.example.test",
    "conditions": "repository=acme/fraud\nref=refs/heads/main\n",
    "account": "ci-bot",
    "scopes": ["read", "write"],
    "token_lifetime_seconds": "600",
    "enabled": "on",
}


@pytest.fixture
def signed_in(client, admin, service_account):
    client.force_login(admin)
    return client


def test_an_admin_creates_a_policy(signed_in):
    response = signed_in.post(NEW, FORM)
    assert response.status_code == 302, response.content.decode()
    policy = TrustPolicy.objects.get()
    assert policy.issuer == "https://token.actions.githubusercontent.com"
    assert policy.conditions == {"repository": "acme/fraud", "ref": "refs/heads/main"}
    assert policy.scopes == ["read", "write"] and policy.token_lifetime_seconds == 600
    event = AuditEvent.objects.get(action="trust_policy.created")
    assert event.source == "web" and event.changes["after"]["account"] == "ci-bot"
    page = signed_in.get(LIST).content.decode()
    assert "fraud-main" in page and "repository=acme/fraud" in page


def test_a_refused_policy_is_shown_on_the_form(signed_in):
    response = signed_in.post(NEW, {**FORM, "conditions": "ref=refs/heads/main"})
    assert response.status_code == 400
    assert "must name repository or repository_id" in response.content.decode()
    assert not TrustPolicy.objects.exists()
    response = signed_in.post(NEW, {**FORM, "conditions": "branch=main"})
    assert response.status_code == 400 and "is not a condition for github" in response.content.decode()


def test_an_admin_edits_and_deletes_a_policy(signed_in):
    signed_in.post(NEW, FORM)
    policy = TrustPolicy.objects.get()
    edit = f"/access/trust-policies/{policy.pk}/edit"
    assert "repository=acme/fraud" in signed_in.get(edit).content.decode()
    response = signed_in.post(edit, {**FORM, "scopes": ["read"], "enabled": ""})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.scopes == ["read"] and not policy.enabled
    event = AuditEvent.objects.get(action="trust_policy.updated")
    assert event.changes["before"] == {"scopes": ["read", "write"], "enabled": True}
    delete = f"/access/trust-policies/{policy.pk}/delete"
    assert signed_in.get(delete).status_code == 200
    assert signed_in.post(delete).status_code == 302
    assert not TrustPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="trust_policy.deleted").count() == 1


def test_only_admins_see_the_pages(client, reviewer, auditor, admin, service_account):
    client.force_login(admin)
    client.post(NEW, FORM)
    pk = TrustPolicy.objects.get().pk
    for person in (reviewer, auditor):
        client.force_login(person)
        for url in (LIST, NEW, f"/access/trust-policies/{pk}/edit", f"/access/trust-policies/{pk}/delete"):
            assert client.get(url).status_code == 403, url
        assert client.post(NEW, {**FORM, "name": "other"}).status_code == 403
    assert TrustPolicy.objects.count() == 1


def list_queries(client, admin, count: int) -> int:
    TrustPolicy.objects.all().delete()
    for index in range(count):
        TrustPolicy.objects.create(
            name=f"p{index}",
            provider="github",
            issuer="https://token.actions.githubusercontent.com",
            audience="a",
            conditions={"repository": f"acme/r{index}"},
            account=ServiceAccountFactory(),
            scopes=["read"],
            created_by=admin,
        )
    client.force_login(admin)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(LIST).status_code == 200
    return len(captured)


def test_list_query_count_is_pinned(client, admin, django_assert_max_num_queries):
    assert list_queries(client, admin, 2) == list_queries(client, admin, 20)
    # session, user, the policies with their accounts and creators, the header's inbox badge
    with django_assert_max_num_queries(4):
        client.get(LIST)
