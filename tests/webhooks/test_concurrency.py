"""PostgreSQL: a subscription deleted while a worker is sending its last attempt: neither waits on the other
forever (the delete takes the message's lock first, in the worker's order)."""

import threading
import time

import pytest
from django.db import connection

from approvals import tasks
from approvals.models import OutboxMessage
from approvals.tasks import deliver_message
from audit.models import AuditEvent
from core.source import Source
from tests.webhooks.support import messages_for, subscribe, touch
from webhooks.models import WebhookSubscription
from webhooks.services import webhook_delete


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_delete_during_the_last_attempt(admin, fraud, receivers, monkeypatch):
    monkeypatch.setattr("webhooks.fanout.enqueue", lambda message_id: None)  # this test sends by hand
    hold = threading.Event()
    receiver = receivers(500, hold=hold)
    subscription = subscribe(admin, receiver.url, events=["asset.updated"])
    touch(fraud)
    [message] = messages_for(subscription)
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=tasks.MAX_ATTEMPTS - 1)
    errors, outcomes = [], []

    def run(work):
        try:
            outcomes.append(work())
        except Exception as exc:  # asserted on below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run, args=(lambda: deliver_message(message.pk),))
    worker.start()
    assert receiver.arrived.wait(10)  # the worker holds the message's lock, waiting for the answer
    deleter = threading.Thread(
        target=run,
        args=(lambda: webhook_delete(actor=admin, source=Source.cli(), subscription=subscription),),
    )
    deleter.start()
    wait_until(lambda: lock_waiters() >= 1)  # the delete waits for the message's lock
    hold.set()
    worker.join(30)
    deleter.join(30)
    assert not worker.is_alive() and not deleter.is_alive()
    assert errors == []
    assert "failed" in outcomes
    assert not WebhookSubscription.objects.exists() and not OutboxMessage.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="webhook.").values_list("action", flat=True))
    assert actions == ["webhook.created", "webhook.failing", "webhook.deleted"]
