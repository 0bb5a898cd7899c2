"""The outbox: a callback is written with the decision, delivered afterwards by a worker, retried with backoff
under the same webhook id, every attempt logged; the sweep finds messages whose task was lost.

Receivers listen on 127.0.0.1 (allow-listed); the stub resolver and loopback guard of test_callbacks apply.
"""

import datetime as dt
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from approvals import tasks
from approvals.models import OutboxAttempt, OutboxMessage, PromotionRequest
from approvals.payloads import callback_body
from approvals.services import promotion_reject, promotion_request
from approvals.tasks import deliver_message, sweep_outbox, wait_for_background_callbacks
from core.source import Source
from tests.approvals.test_callbacks import (  # noqa: F401 (autouse fixtures)
    decide,
    delivery,
    drained,
    loopback_only,
    resolver,
)
from tests.helpers import Receiver


@pytest.fixture
def receiver_factory(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    made = []

    def make(*statuses):
        made.append(Receiver(*statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def requested(world, url):
    return promotion_request(
        actor=world.ci,
        source=Source.cli(),
        asset=world.asset,
        version=world.v2,
        stage=world.production,
        justification="go",
        callback_url=url,
    )


def verified(settings, headers, body):
    """What the standardwebhooks library makes of a received callback (it raises when it does not verify)."""
    return Webhook(settings.WEBHOOK_SECRET.encode()).verify(body, headers)


@pytest.mark.django_db
def test_the_message_is_written_in_the_decisions_transaction(world, receiver_factory, monkeypatch):
    receiver = receiver_factory(204)
    promotion = requested(world, receiver.url)
    assert not OutboxMessage.objects.exists()  # a pending request sends nothing
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    promotion.refresh_from_db()
    message = OutboxMessage.objects.get()
    assert (message.webhook_id, message.event_type, message.url, message.status, message.attempts) == (
        f"msg_{promotion.pk}_{promotion.revision}",
        "promotion.rejected",
        receiver.url,
        "pending",
        0,
    )
    assert bytes(message.payload) == callback_body(PromotionRequest.objects.get(pk=promotion.pk))
    assert receiver.deliveries == []  # nothing sent before the transaction commits (it never does here)

    # A decision rolled back (its audit event could not be written) leaves no message.
    other = requested(world, receiver.url)
    monkeypatch.setattr("approvals.services.promotions.audit_record", _broken)
    with pytest.raises(RuntimeError):
        promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=other.pk, comment="no")
    assert list(OutboxMessage.objects.values_list("pk", flat=True)) == [message.pk]


def _broken(**kwargs):
    raise RuntimeError("audit unavailable")


@delivery
def test_delivery_marks_it_delivered_with_one_attempt(world, settings, receiver_factory):
    receiver = receiver_factory(204)
    promotion_id = decide(world, receiver.url)
    assert wait_for_background_callbacks(timeout=15)
    message = OutboxMessage.objects.get()
    assert (message.status, message.attempts, message.last_error) == ("delivered", 1, "")
    [attempt] = message.delivery_attempts.all()
    assert (attempt.status_code, attempt.error) == (204, "")
    assert 0 <= attempt.latency_ms < 15000
    [(headers, body)] = receiver.deliveries
    assert headers["webhook-id"] == message.webhook_id
    assert verified(settings, headers, body)["data"]["id"] == promotion_id


@pytest.mark.django_db
def test_a_receiver_failing_three_times_then_succeeding(world, settings, receiver_factory):
    receiver = receiver_factory(500, 503, 500, 204)
    promotion = requested(world, receiver.url)
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    message = OutboxMessage.objects.get()
    now = timezone.now()
    for expected in ("pending", "pending", "pending", "delivered"):
        assert deliver_message(message.pk, now=now) == expected
        message.refresh_from_db()
        if expected == "pending":
            assert deliver_message(message.pk, now=message.next_attempt_at - dt.timedelta(seconds=1)) is None
            now = message.next_attempt_at  # the retry is due: no sleeping
    assert deliver_message(message.pk, now=now + dt.timedelta(days=2)) is None  # delivered: never again
    attempts = list(OutboxAttempt.objects.filter(message=message).values_list("status_code", "error"))
    assert attempts == [(500, "answered 500"), (503, "answered 503"), (500, "answered 500"), (204, "")]
    assert (message.status, message.attempts) == ("delivered", 4)
    assert len(receiver.deliveries) == 4
    assert {headers["webhook-id"] for headers, _ in receiver.deliveries} == {message.webhook_id}
    for headers, body in receiver.deliveries:
        assert verified(settings, headers, body)["type"] == "promotion.rejected"


@pytest.mark.django_db
def test_backoff_grows_with_jitter_over_about_a_day_then_the_message_fails(world, receiver_factory):
    waits = [tasks.retry_delay(n) for n in range(1, tasks.MAX_ATTEMPTS)]
    assert waits[0] <= dt.timedelta(seconds=72) and all(w <= dt.timedelta(hours=7.2) for w in waits)
    assert dt.timedelta(hours=14) < sum(waits, dt.timedelta()) < dt.timedelta(hours=30)
    assert len({tasks.retry_delay(5) for _ in range(20)}) > 1  # jitter
    receiver = receiver_factory(500)
    promotion = requested(world, receiver.url)
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    message = OutboxMessage.objects.get()
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=tasks.MAX_ATTEMPTS - 1)
    assert deliver_message(message.pk) == "failed"
    message.refresh_from_db()
    assert (message.attempts, message.last_error) == (tasks.MAX_ATTEMPTS, "answered 500")


@delivery
def test_the_sweep_delivers_a_message_whose_task_was_lost(world, settings, receiver_factory, monkeypatch):
    receiver = receiver_factory(204)
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker, which is down when the decision commits

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_outbox, "apply_async", broker_down)
    promotion_id = decide(world, receiver.url)  # answered 200: the decision is committed
    message = OutboxMessage.objects.get()
    assert (message.status, receiver.deliveries) == ("pending", [])
    # Not yet due messages are left alone; due ones are enqueued, and the worker delivers them.
    later = OutboxMessage.objects.create(
        webhook_id="msg_later",
        event_type="promotion.rejected",
        url=receiver.url,
        payload=b"{}",
        label="later",
        next_attempt_at=timezone.now() + dt.timedelta(hours=1),
    )
    enqueued = []
    monkeypatch.setattr(tasks.deliver_outbox, "apply_async", lambda args, **kw: enqueued.append(args))
    assert sweep_outbox() == 1
    assert enqueued == [(message.pk,)]
    assert tasks.deliver_outbox(*enqueued[0]) == "delivered"  # as the worker runs it
    [(headers, body)] = receiver.deliveries
    assert verified(settings, headers, body)["data"]["id"] == promotion_id
    assert OutboxMessage.objects.get(pk=later.pk).status == "pending"
    assert sweep_outbox() == 0


@delivery
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_a_message_being_sent_by_one_worker_is_skipped_by_another(world, settings, receiver_factory):
    receiver = receiver_factory(204)
    OutboxMessage.objects.create(
        webhook_id="msg_locked",
        event_type="promotion.rejected",
        url=receiver.url,
        payload=b"{}",
        label="locked",
        next_attempt_at=timezone.now(),
    )
    message = OutboxMessage.objects.get(webhook_id="msg_locked")
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                list(OutboxMessage.objects.select_for_update().filter(pk=message.pk))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert deliver_message(message.pk) is None  # skipped, not waited for
    finally:
        release.set()
        thread.join(10)
    assert receiver.deliveries == []
    assert deliver_message(message.pk) == "delivered"


@pytest.mark.django_db
def test_a_retry_soon_is_enqueued_with_a_countdown_a_later_one_left_to_the_sweep(
    world, settings, receiver_factory, monkeypatch
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    enqueued = []
    monkeypatch.setattr(tasks.deliver_outbox, "apply_async", lambda args, **kw: enqueued.append((args, kw)))
    receiver = receiver_factory(500)
    promotion = requested(world, receiver.url)
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    message = OutboxMessage.objects.get()
    assert deliver_message(message.pk) == "pending"  # first failure: about a minute
    [((message_id,), options)] = enqueued
    assert message_id == message.pk and 48 <= options["countdown"] <= 72
    enqueued.clear()
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=5)  # the sixth failure waits about 32 min
    assert deliver_message(message.pk, now=timezone.now() + dt.timedelta(minutes=2)) == "pending"
    assert enqueued == []
