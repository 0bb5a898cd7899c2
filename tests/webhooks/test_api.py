"""The subscription API: who may subscribe to what, who sees what, validation, the secret shown once."""

import json

import pytest

from audit.models import AuditEvent
from tests.factories import AssetFactory, UserFactory, grant
from tests.helpers import api_client
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db


def create(user, receiver_url, **body):
    body = {"url": receiver_url, "events": ["*"], **body}
    return api_client(user).post("/api/v1/webhooks", body, format="json")


def test_an_admin_subscribes_to_every_asset_and_sees_the_secret_once(admin, receivers):
    receiver = receivers()
    response = create(admin, receiver.url, events=["promotion.applied", "asset.updated"], description="ci")
    assert response.status_code == 201, response.content
    created = response.json()
    subscription = WebhookSubscription.objects.get()
    assert created["secret"] == subscription.secret and created["secret"].startswith("whsec_")
    assert len(subscription.signing_key) >= 24
    assert response["Location"] == f"/api/v1/webhooks/{subscription.pk}"
    assert {k: created[k] for k in ("id", "url", "events", "asset", "active", "status", "created_by")} == {
        "id": subscription.pk,
        "url": receiver.url,
        "events": ["asset.updated", "promotion.applied"],
        "asset": None,
        "active": True,
        "status": "active",
        "created_by": "root",
    }
    shown = api_client(admin).get(f"/api/v1/webhooks/{subscription.pk}")
    listed = api_client(admin).get("/api/v1/webhooks")
    assert shown.status_code == listed.status_code == 200
    assert "secret" not in shown.json() and subscription.secret not in shown.content.decode()
    assert [row["id"] for row in listed.json()["results"]] == [subscription.pk]
    assert subscription.secret not in listed.content.decode()
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.changes["after"]["url"] == receiver.url and event.asset_id is None
    assert subscription.secret[6:] not in bytes(event.body).decode()


def test_a_manager_subscribes_to_its_asset_only(manager, fraud, receivers):
    receiver = receivers()
    response = create(manager, receiver.url, asset="model/fraud")
    assert response.status_code == 201, response.content
    assert response.json()["asset"] == "model/fraud"
    assert AuditEvent.objects.get(action="webhook.created").asset_id == fraud.pk
    everything = create(manager, receiver.url)
    assert everything.status_code == 403
    other = AssetFactory(name="other")
    assert create(manager, receiver.url, asset="model/other").status_code == 404  # not visible to mia
    grant(manager, other, "view")
    assert create(manager, receiver.url, asset="model/other").status_code == 403
    assert WebhookSubscription.objects.count() == 1


def test_a_contributor_is_refused_and_an_outsider_does_not_see_the_asset(contributor, outsider, receivers):
    receiver = receivers()
    refused = create(contributor, receiver.url, asset="model/fraud")
    assert refused.status_code == 403 and refused.json()["type"] == "permission-denied"
    hidden = create(outsider, receiver.url, asset="model/fraud")
    assert hidden.status_code == 404
    assert create(outsider, receiver.url).status_code == 403
    assert not WebhookSubscription.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()


@pytest.mark.parametrize(
    "body, field, says",
    [
        ({"url": "http://10.0.0.1/hook"}, "url", "private"),  # refused as data: never connected to
        ({"url": "ftp://example.org/"}, "url", "http or https"),
        ({"url": "https://hooks.example.org/"}, "url", "public addresses"),  # does not resolve here
        ({"url": ""}, "url", ""),
        ({"events": ["asset.updated", "asset.exploded"]}, "events", "'asset.exploded'"),
        ({"events": []}, "events", "non-empty"),
        ({"events": ["*", "asset.updated"]}, "events", "alone"),
        ({"events": "asset.updated"}, "events", ""),
        ({"asset": "fraud"}, "asset", "kind/name"),
        ({"asset": "robot/fraud"}, "asset", "kind/name"),
        ({"secret": "whsec_mine"}, "secret", "not a field"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    admin, fraud, settings, body, field, says
):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the default URL below is allowed
    events = AuditEvent.objects.count()
    response = api_client(admin).post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"], **body}, format="json"
    )
    assert response.status_code == 400, response.content
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == [field]
    assert says in problem["errors"][0]["message"]
    assert not WebhookSubscription.objects.exists() and AuditEvent.objects.count() == events


def test_who_sees_which_subscriptions(admin, manager, contributor, outsider, fraud, receivers):
    receiver = receivers()
    other = AssetFactory(name="other")
    otto = UserFactory(username="otto")
    grant(otto, other, "manage")
    mine = create(manager, receiver.url, asset="model/fraud").json()["id"]
    admins = create(admin, receiver.url, asset="model/fraud").json()["id"]
    global_ = create(admin, receiver.url).json()["id"]
    ottos = create(otto, receiver.url, asset="model/other").json()["id"]

    def listed(user):
        return {row["id"] for row in api_client(user).get("/api/v1/webhooks").json()["results"]}

    assert listed(admin) == {mine, admins, global_, ottos}
    assert listed(manager) == {mine, admins}  # the managers of fraud see its webhooks
    assert listed(otto) == {ottos}
    assert listed(contributor) == listed(outsider) == set()
    assert api_client(otto).get(f"/api/v1/webhooks/{mine}").status_code == 404
    assert api_client(contributor).get(f"/api/v1/webhooks/{mine}/deliveries").status_code == 404
    assert api_client(manager).get(f"/api/v1/webhooks/{global_}").status_code == 404


def test_update_and_delete(admin, manager, fraud, receivers):
    receiver, other = receivers(), receivers()
    pk = create(manager, receiver.url, asset="model/fraud").json()["id"]
    client = api_client(manager)
    changed = client.patch(
        f"/api/v1/webhooks/{pk}",
        {"url": other.url, "events": ["version.created"], "description": "x", "active": False},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert {k: changed.json()[k] for k in ("url", "events", "description", "active")} == {
        "url": other.url,
        "events": ["version.created"],
        "description": "x",
        "active": False,
    }
    event = AuditEvent.objects.get(action="webhook.updated")
    assert event.changes["before"]["events"] == ["*"] and event.changes["after"]["url"] == other.url
    assert client.patch(f"/api/v1/webhooks/{pk}", {"asset": None}, format="json").status_code == 403
    bad = client.patch(f"/api/v1/webhooks/{pk}", {"events": ["nope"]}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "events"
    immutable = client.patch(f"/api/v1/webhooks/{pk}", {"created_by": "root"}, format="json")
    assert immutable.status_code == 400

    # Re-activating a failing subscription makes it active again.
    WebhookSubscription.objects.filter(pk=pk).update(status="failing")
    again = client.patch(f"/api/v1/webhooks/{pk}", {"active": True}, format="json")
    assert (again.json()["active"], again.json()["status"], again.json()["failing_since"]) == (
        True,
        "active",
        None,
    )

    assert client.delete(f"/api/v1/webhooks/{pk}").status_code == 204
    assert not WebhookSubscription.objects.exists()
    deleted = AuditEvent.objects.get(action="webhook.deleted")
    assert deleted.asset_id == fraud.pk and deleted.target_id == str(pk)
    for event in AuditEvent.objects.filter(action__startswith="webhook."):
        assert "whsec_" not in bytes(event.body).decode()


def test_a_creator_who_lost_the_manage_role_may_delete_but_not_change(manager, fraud, receivers):
    from registry.models import AssetUserObjectPermission

    receiver = receivers()
    pk = create(manager, receiver.url, asset="model/fraud").json()["id"]
    AssetUserObjectPermission.objects.filter(user=manager).delete()
    grant(manager, fraud, "view")
    client = api_client(manager)
    assert client.get(f"/api/v1/webhooks/{pk}").status_code == 200
    assert client.patch(f"/api/v1/webhooks/{pk}", {"description": "y"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/webhooks/{pk}").status_code == 204


def test_token_scopes(admin, receivers):
    from accounts.services import token_create
    from core.source import Source

    receiver = receivers()
    _, reader = token_create(actor=None, source=Source.cli(), account=admin, name="r", scopes=["read"])
    _, manager = token_create(actor=None, source=Source.cli(), account=admin, name="m", scopes=["manage"])
    body = {"url": receiver.url, "events": ["*"]}
    assert api_client(token=reader).post("/api/v1/webhooks", body, format="json").status_code == 403
    assert api_client(token=reader).get("/api/v1/webhooks").status_code == 200
    assert api_client(token=manager).post("/api/v1/webhooks", body, format="json").status_code == 201


def test_the_list_runs_a_fixed_number_of_queries(admin, fraud, receivers, django_assert_max_num_queries):
    receiver = receivers()
    for index in range(3):
        asset = AssetFactory(name=f"m{index}")
        create(admin, receiver.url, asset=f"model/{asset.name}")
    client = api_client(admin)
    with django_assert_max_num_queries(3):
        response = client.get("/api/v1/webhooks")
    assert len(response.json()["results"]) == 3
    assert json.loads(response.content)["results"][0]["deliveries_url"].endswith("/deliveries")


def test_ids_out_of_range_answer_404(admin, receivers):
    client = api_client(admin)
    huge = "9" * 30
    pk = create(admin, receivers().url).json()["id"]
    assert client.post(f"/api/v1/webhooks/{pk}/deliveries/{huge}/redeliver").status_code == 404
    assert client.get(f"/api/v1/webhooks/{huge}").status_code == 404
    assert client.get(f"/api/v1/webhooks/{huge}/deliveries").status_code == 404
    assert client.post(f"/api/v1/webhooks/{huge}/deliveries/{huge}/redeliver").status_code == 404
