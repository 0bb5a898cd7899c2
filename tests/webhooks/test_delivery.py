"""Delivery of a subscription's messages: signed with its own secret (verified with the standardwebhooks
library), retried, logged per attempt; a final failure marks the subscription failing, a later success
recovered; redelivery. Receivers listen on 127.0.0.1, allow-listed for the test."""

import datetime as dt

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from approvals import tasks
from approvals.models import OutboxMessage
from approvals.tasks import deliver_message, wait_for_background_callbacks
from audit.models import AuditEvent
from tests.helpers import World, api_client
from tests.webhooks.support import messages_for, subscribe, touch
from webhooks.models import WebhookSubscription


@pytest.fixture(autouse=True)
def drained():
    """No delivery outlives its test."""
    yield
    assert wait_for_background_callbacks(timeout=30)


def created_by_api(user, url, **body):
    response = api_client(user).post("/api/v1/webhooks", {"url": url, "events": ["*"], **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.django_db
def test_a_delivery_verifies_with_the_standardwebhooks_library(manager, fraud, receivers):
    receiver = receivers(204)
    created = created_by_api(manager, receiver.url, asset="model/fraud")
    subscription = WebhookSubscription.objects.get(pk=created["id"])
    touch(fraud)
    [message] = messages_for(subscription)
    assert deliver_message(message.pk) == "delivered"
    [(headers, body)] = receiver.deliveries
    payload = Webhook(created["secret"]).verify(body, headers)  # the secret as the create answer gave it
    event = AuditEvent.objects.get(seq=payload["data"]["seq"])
    assert payload["type"] == event.action == "asset.updated"
    assert payload["data"]["chain_hash"] == bytes(event.chain_hash).hex()
    assert headers["webhook-id"] == message.webhook_id
    with pytest.raises(WebhookVerificationError):  # another secret does not verify
        Webhook(created["secret"][:-8] + "AAAAAAA=").verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # nor does the promotion callback secret
        from django.conf import settings

        Webhook(settings.WEBHOOK_SECRET.encode()).verify(body, headers)


@pytest.mark.django_db
def test_failing_three_times_then_succeeding_gives_four_attempts_in_the_log(admin, fraud, receivers):
    receiver = receivers(500, 503, 500, 204)
    created = created_by_api(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(WebhookSubscription.objects.get(pk=created["id"]))
    now = timezone.now()
    for expected in ("pending", "pending", "pending", "delivered"):
        assert deliver_message(message.pk, now=now) == expected
        message.refresh_from_db()
        now = message.next_attempt_at  # the retry is due: no sleeping
    response = api_client(admin).get(f"/api/v1/webhooks/{created['id']}/deliveries")
    assert response.status_code == 200
    [delivery] = response.json()["results"]
    assert (delivery["id"], delivery["webhook_id"], delivery["event_type"], delivery["status"]) == (
        message.pk,
        message.webhook_id,
        "asset.updated",
        "delivered",
    )
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (500, "answered 500"),
        (503, "answered 503"),
        (500, "answered 500"),
        (204, ""),
    ]
    assert all(isinstance(a["latency_ms"], int) and a["at"] for a in delivery["attempts"])
    assert len(receiver.deliveries) == 4
    assert {headers["webhook-id"] for headers, _ in receiver.deliveries} == {message.webhook_id}
    for headers, body in receiver.deliveries:
        Webhook(created["secret"]).verify(body, headers)
    assert WebhookSubscription.objects.get().status == "active"


@pytest.mark.django_db
def test_a_final_failure_marks_the_subscription_failing_and_a_success_recovers_it(manager, fraud, receivers):
    receiver = receivers(500, 204)
    created = created_by_api(manager, receiver.url, asset="model/fraud", events=["asset.updated"])
    subscription = WebhookSubscription.objects.get(pk=created["id"])
    touch(fraud)
    [message] = messages_for(subscription)
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=tasks.MAX_ATTEMPTS - 1)
    assert deliver_message(message.pk) == "failed"
    subscription.refresh_from_db()
    assert subscription.status == "failing" and subscription.failing_since is not None
    event = AuditEvent.objects.get(action="webhook.failing")
    assert (event.actor_kind, event.asset_id, event.target_id) == ("system", fraud.pk, str(subscription.pk))
    assert event.changes["created_by"] == "mia" and event.changes["url"] == receiver.url
    assert event.changes["webhook_id"] == message.webhook_id and event.changes["error"] == "answered 500"
    assert "whsec_" not in bytes(event.body).decode()
    shown = api_client(manager).get(f"/api/v1/webhooks/{subscription.pk}").json()
    assert shown["status"] == "failing"

    # A failing subscription keeps receiving; the next delivery recovers it.
    touch(fraud)
    newer = messages_for(subscription)[-1]
    assert deliver_message(newer.pk) == "delivered"
    subscription.refresh_from_db()
    assert (subscription.status, subscription.failing_since) == ("active", None)
    recovered = AuditEvent.objects.get(action="webhook.recovered")
    assert recovered.asset_id == fraud.pk and recovered.changes["delivery"] == newer.pk
    assert AuditEvent.objects.filter(action="webhook.failing").count() == 1


@pytest.mark.django_db
def test_a_refused_address_fails_at_once(admin, fraud, receivers, settings):
    receiver = receivers(204)
    created = created_by_api(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    settings.CALLBACK_ALLOWED_HOSTS = []  # loopback is no longer allowed when it is sent
    [message] = messages_for(WebhookSubscription.objects.get(pk=created["id"]))
    assert deliver_message(message.pk) == "failed"
    assert receiver.deliveries == []
    assert WebhookSubscription.objects.get().status == "failing"
    assert AuditEvent.objects.get(action="webhook.failing").asset_id is None


@pytest.mark.django_db
def test_redeliver_sends_it_again_with_the_same_id_and_is_audited(admin, fraud, receivers):
    receiver = receivers(204)
    created = created_by_api(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(WebhookSubscription.objects.get(pk=created["id"]))
    assert deliver_message(message.pk) == "delivered"
    client = api_client(admin)
    url = f"/api/v1/webhooks/{created['id']}/deliveries/{message.pk}/redeliver"
    response = client.post(url)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and len(response.json()["attempts"]) == 1
    event = AuditEvent.objects.get(action="webhook.redelivered")
    assert event.changes["delivery"] == message.pk and event.changes["status_before"] == "delivered"
    assert deliver_message(message.pk) == "delivered"
    assert [headers["webhook-id"] for headers, _ in receiver.deliveries] == [message.webhook_id] * 2
    log = client.get(f"/api/v1/webhooks/{created['id']}/deliveries").json()["results"]
    assert [len(row["attempts"]) for row in log] == [2]
    # Another subscription's delivery, or one that does not exist: 404.
    other = created_by_api(admin, receiver.url, events=["asset.updated"])
    assert client.post(f"/api/v1/webhooks/{other['id']}/deliveries/{message.pk}/redeliver").status_code == 404
    assert client.post(f"/api/v1/webhooks/{created['id']}/deliveries/999999/redeliver").status_code == 404


@pytest.mark.django_db
def test_a_deleted_subscriptions_messages_are_never_sent(admin, fraud, receivers):
    receiver = receivers(204)
    subscription = subscribe(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(subscription)
    assert api_client(admin).delete(f"/api/v1/webhooks/{subscription.pk}").status_code == 204
    assert not OutboxMessage.objects.filter(pk=message.pk).exists()
    # A message whose subscription is gone (written around the service) is refused, not sent.
    orphan = OutboxMessage.objects.create(
        webhook_id="evt_x",
        event_type="asset.updated",
        url=receiver.url,
        payload=b"{}",
        label="orphan",
        webhook=str(subscription.pk),
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1),
    )
    assert deliver_message(orphan.pk) == "failed"
    assert receiver.deliveries == []


@pytest.mark.django_db
def test_a_promotion_event_carries_the_request(receivers):
    world = World()
    receiver = receivers(204)
    created = created_by_api(world.manager, receiver.url, asset="model/fraud", events=["promotion.requested"])
    assert world.request().status_code == 201
    [message] = messages_for(WebhookSubscription.objects.get(pk=created["id"]))
    assert deliver_message(message.pk) == "delivered"
    [(headers, body)] = receiver.deliveries
    data = Webhook(created["secret"]).verify(body, headers)["data"]
    promotion = data["promotion"]
    assert (promotion["status"], promotion["version"], promotion["stage"]) == ("pending", 2, "production")
    assert promotion["url"] == f"/api/v1/promotions/{promotion['id']}"
    assert promotion["page"] == f"/promotions/{promotion['id']}/"
    assert data["actor"] == {"kind": "service_account", "name": "ci"}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_committed_events_are_delivered_in_the_background(admin, fraud, receivers):
    receiver = receivers(204)
    created = created_by_api(admin, receiver.url, events=["asset.updated"])
    touch(fraud)  # enqueued when its transaction commits: a background thread without a broker
    assert wait_for_background_callbacks(timeout=15)
    [message] = OutboxMessage.objects.filter(webhook=str(created["id"]))
    assert message.status == "delivered"
    [(headers, body)] = receiver.deliveries
    assert Webhook(created["secret"]).verify(body, headers)["type"] == "asset.updated"
