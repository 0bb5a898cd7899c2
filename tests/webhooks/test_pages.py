"""The webhook pages: list, create (the secret shown once, after the redirect), detail with the deliveries
log and redeliver, edit, delete with a confirmation."""

import pytest
from django.test import Client

from approvals.models import OutboxMessage
from approvals.tasks import deliver_message
from audit.models import AuditEvent
from tests.factories import AssetFactory
from tests.webhooks.support import messages_for, subscribe, touch
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_create_shows_the_secret_once_after_the_redirect(manager, fraud, receivers):
    receiver = receivers()
    client = signed_in(manager)
    form = client.get("/webhooks/new")
    assert form.status_code == 200 and 'name="events"' in form.content.decode()
    response = client.post(
        "/webhooks/new",
        {"url": receiver.url, "asset": "model/fraud", "events": ["asset.updated", "version.created"]},
    )
    subscription = WebhookSubscription.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/webhooks/{subscription.pk}/"
    page = client.get(response["Location"])
    assert page.status_code == 200 and subscription.secret in page.content.decode()
    assert page["Cache-Control"] == "no-store"
    again = client.get(response["Location"])
    assert again.status_code == 200 and subscription.secret not in again.content.decode()
    assert subscription.events == ["asset.updated", "version.created"] and subscription.asset == fraud
    assert AuditEvent.objects.get(action="webhook.created").source == "web"


def test_create_refusals_are_shown_on_the_form(manager, contributor, fraud, receivers):
    receiver = receivers()
    client = signed_in(manager)
    everything = client.post("/webhooks/new", {"url": receiver.url, "events": ["*"]})
    assert everything.status_code == 400 and "registry admin" in everything.content.decode()
    private = {"url": "http://10.1.2.3/", "asset": "model/fraud", "events": ["*"]}  # refused, never reached
    bad_url = client.post("/webhooks/new", private)
    assert bad_url.status_code == 400 and "is not an allowed callback host" in bad_url.content.decode()
    hidden = client.post("/webhooks/new", {"url": receiver.url, "asset": "model/nope", "events": ["*"]})
    assert hidden.status_code == 400 and "no asset model/nope that you can see" in hidden.content.decode()
    refused = signed_in(contributor).post(
        "/webhooks/new", {"url": receiver.url, "asset": "model/fraud", "events": ["*"]}
    )
    assert refused.status_code == 400 and "manage" in refused.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_detail_lists_deliveries_with_their_attempts_and_redelivers(admin, fraud, receivers):
    receiver = receivers(500, 204)
    subscription = subscribe(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(subscription)
    assert deliver_message(message.pk) == "pending"
    client = signed_in(admin)
    page = client.get(f"/webhooks/{subscription.pk}/").content.decode()
    assert message.webhook_id in page and "answered 500" in page and subscription.secret not in page
    redeliver = f"/webhooks/{subscription.pk}/deliveries/{message.pk}/redeliver"
    assert f'action="{redeliver}"' in page
    assert client.get(redeliver).status_code == 405
    response = client.post(redeliver)
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="webhook.redelivered").count() == 1
    assert deliver_message(message.pk) == "delivered"
    assert "delivered" in client.get(f"/webhooks/{subscription.pk}/").content.decode()


def test_redeliver_needs_the_csrf_token(admin, fraud, receivers):
    subscription = subscribe(admin, receivers().url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(subscription)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post(f"/webhooks/{subscription.pk}/deliveries/{message.pk}/redeliver")
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="webhook.redelivered").exists()


def test_edit_and_delete_with_a_confirmation(manager, fraud, receivers):
    receiver = receivers()
    subscription = subscribe(manager, receiver.url, asset=fraud)
    client = signed_in(manager)
    form = client.get(f"/webhooks/{subscription.pk}/edit")
    assert form.status_code == 200 and receiver.url in form.content.decode()
    response = client.post(
        f"/webhooks/{subscription.pk}/edit",
        {"url": receiver.url, "asset": "model/fraud", "events": ["version.created"], "description": "ci"},
    )
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.events, subscription.description, subscription.active) == (
        ["version.created"],
        "ci",
        False,
    )
    confirm = client.get(f"/webhooks/{subscription.pk}/delete")
    assert confirm.status_code == 200 and "Delete the webhook" in confirm.content.decode()
    assert WebhookSubscription.objects.exists()
    deleted = client.post(f"/webhooks/{subscription.pk}/delete")
    assert deleted.status_code == 302 and deleted["Location"] == "/webhooks/"
    assert not WebhookSubscription.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.deleted").count() == 1


def test_others_get_404(manager, outsider, fraud, receivers):
    subscription = subscribe(manager, receivers().url, asset=fraud)
    client = signed_in(outsider)
    for path in ("", "edit", "delete"):
        assert client.get(f"/webhooks/{subscription.pk}/{path}").status_code == 404
    assert client.post(f"/webhooks/{subscription.pk}/delete").status_code == 404
    assert client.get("/webhooks/").status_code == 200
    assert f"/webhooks/{subscription.pk}/" not in client.get("/webhooks/").content.decode()
    assert Client().get("/webhooks/").status_code == 302  # sign in first


def test_pages_run_a_fixed_number_of_queries(admin, fraud, receivers, django_assert_max_num_queries):
    receiver = receivers(500)
    for index in range(4):
        asset = AssetFactory(name=f"m{index}")
        subscribe(admin, receiver.url, asset=asset)
    subscription = subscribe(admin, receiver.url, events=["asset.updated"])
    for _ in range(4):
        touch(fraud)
    for message in OutboxMessage.objects.filter(webhook=str(subscription.pk)):
        deliver_message(message.pk)
    client = signed_in(admin)
    with django_assert_max_num_queries(5):  # session, user, count, webhooks, the header's inbox badge
        listed = client.get("/webhooks/")
    assert listed.content.decode().count('href="/webhooks/') >= 5
    # session, user, webhook, count, deliveries, attempts, the header's inbox badge
    with django_assert_max_num_queries(7):
        detail = client.get(f"/webhooks/{subscription.pk}/")
    assert detail.content.decode().count("answered 500") == 4


def test_the_header_links_to_the_pages(viewer):
    assert 'href="/webhooks/"' in signed_in(viewer).get("/webhooks/").content.decode()
