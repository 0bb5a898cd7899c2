"""Fan-out: each audit event becomes one outbox message per subscription that asks for it and may see it,
in the event's transaction."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.services import login_record
from approvals.models import OutboxMessage
from audit import services as audit_services
from audit.models import Action, AuditEvent
from core.source import Source
from registry.models import AssetUserObjectPermission
from tests.factories import AssetFactory, UserFactory, grant
from tests.webhooks.support import messages_for, subscribe, touch
from webhooks.fanout import fan_out

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]


def test_a_managers_subscription_receives_the_events_of_its_asset_only(manager, fraud):
    subscription = subscribe(manager, URL, asset=fraud)
    other = AssetFactory(name="other")
    touch(other)
    assert messages_for(subscription) == []
    touch(fraud)
    [message] = messages_for(subscription)
    event = AuditEvent.objects.filter(action="asset.updated").order_by("-seq").first()
    assert (message.webhook_id, message.event_type, message.url, message.status) == (
        f"evt_{event.seq}_wh_{subscription.pk}",
        "asset.updated",
        URL,
        "pending",
    )
    body = json.loads(bytes(message.payload))
    assert body["type"] == "asset.updated" and body["timestamp"] == body["data"]["occurred_at"]
    data = body["data"]
    assert data["seq"] == event.seq and data["action"] == "asset.updated"
    assert data["asset"] == {"kind": "model", "name": "fraud", "id": fraud.pk}
    assert data["actor"] == {"kind": "system", "name": "system"}
    assert data["target"] == {"kind": "registry.asset", "id": str(fraud.pk), "repr": "model/fraud"}
    assert data["changes"] == event.changes
    assert data["chain_hash"] == bytes(event.chain_hash).hex()


def test_a_manager_who_loses_access_receives_nothing(manager, fraud):
    subscription = subscribe(manager, URL, asset=fraud)
    AssetUserObjectPermission.objects.filter(user=manager).delete()
    touch(fraud)
    assert messages_for(subscription) == []
    grant(manager, fraud, "view")  # seeing the asset is enough to keep receiving
    touch(fraud)
    assert len(messages_for(subscription)) == 1
    manager.is_active = False
    manager.save()
    touch(fraud)
    assert len(messages_for(subscription)) == 1


def test_access_through_a_team_counts(admin, fraud):
    from tests.factories import TeamFactory

    person = UserFactory(username="tess")
    team = TeamFactory(name="owners")
    person.groups.add(team)
    grant(team, fraud, "manage")
    subscription = subscribe(person, URL, asset=fraud)
    touch(fraud)
    assert len(messages_for(subscription)) == 1


def test_the_events_list_filters_and_star_takes_every_event_of_the_asset(admin, fraud):
    star = subscribe(admin, URL, asset=fraud)
    only_versions = subscribe(admin, URL, events=["version.created"], asset=fraud)
    updates = subscribe(admin, URL, events=["asset.updated", "version.created"])
    touch(fraud)
    assert [m.event_type for m in messages_for(star, own=True)] == ["webhook.created"] * 2 + ["asset.updated"]
    assert messages_for(only_versions) == []
    assert [m.event_type for m in messages_for(updates)] == ["asset.updated"]


def test_inactive_subscriptions_receive_nothing_failing_ones_keep_receiving(admin, fraud):
    inactive = subscribe(admin, URL, active=False)
    failing = subscribe(admin, URL)
    type(failing).objects.filter(pk=failing.pk).update(status="failing")
    touch(fraud)
    assert messages_for(inactive) == [] and len(messages_for(failing)) == 1


def test_events_about_no_asset_go_only_to_admins_global_subscriptions_naming_them(admin, manager, fraud):
    star = subscribe(admin, URL)
    logins = subscribe(admin, URL, events=["login.succeeded"])
    managers = subscribe(manager, URL, events=["login.succeeded"], asset=fraud)
    login_record(user=manager, source=Source.cli())
    assert messages_for(star) == [] and messages_for(managers) == []
    [message] = messages_for(logins)
    data = json.loads(bytes(message.payload))["data"]
    assert data["asset"] is None and data["actor"]["name"] == "mia"
    # An admin no longer admin: its global subscription hears nothing more.
    admin.global_role = ""
    admin.save()
    login_record(user=manager, source=Source.cli())
    assert len(messages_for(logins)) == 1


def test_a_rolled_back_change_writes_no_message(admin, fraud):
    subscription = subscribe(admin, URL)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_services.audit_record(
            actor=None, action=Action.ASSET_UPDATED, target=fraud, source=Source.cli(), asset_id=fraud.pk
        )
        assert len(messages_for(subscription)) == 1  # written in the change's transaction...
        raise RuntimeError("the change fails after its event")
    assert messages_for(subscription) == []  # ...and gone with it
    assert not OutboxMessage.objects.exists()


def _queries_of_a_write(fraud) -> int:
    with CaptureQueriesContext(connection) as captured:
        touch(fraud)
    return len(captured)


def test_no_subscriptions_cost_at_most_one_query_per_audited_write(fraud, monkeypatch):
    with_fan_out = _queries_of_a_write(fraud)
    assert fan_out in audit_services._listeners
    monkeypatch.setattr(audit_services, "_listeners", [f for f in audit_services._listeners if f != fan_out])
    without = _queries_of_a_write(fraud)
    assert with_fan_out - without <= 1


def test_matching_subscriptions_cost_a_few_queries_whatever_their_number(admin, fraud, monkeypatch):
    for index in range(2):
        person = UserFactory(username=f"m{index}")
        grant(person, fraud, "manage")
        subscribe(person, URL, asset=fraud)
    few = _queries_of_a_write(fraud)
    for index in range(2, 8):
        person = UserFactory(username=f"m{index}")
        grant(person, fraud, "manage")
        subscribe(person, URL, asset=fraud)
        subscribe(admin, URL)
    many = _queries_of_a_write(fraud)
    assert many == few
    assert OutboxMessage.objects.filter(event_type="asset.updated").count() == 2 + 8 + 6
