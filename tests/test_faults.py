"""Outbound messages under faults, on the real stack (tests/stack.py: gunicorn, ONE Celery worker and beat on
a scratch PostgreSQL database and a redis-server of their own): Redis stopped while promotions are decided,
the worker killed with SIGKILL mid-delivery, a receiver that fails before it succeeds, and the webhook
subscription journey. Delivery is at least once: a message may arrive twice, always under the same webhook-id.

The outbox's retries start at 1 s and the sweep runs every 2 s here (DJANGO_OUTBOX_FIRST_RETRY_SECONDS,
DJANGO_OUTBOX_SWEEP_SECONDS). Receivers listen on 127.0.0.1 (DJANGO_CALLBACK_ALLOWED_HOSTS).
"""

import collections
import itertools
import json
import shutil
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers import Receiver
from tests.stack import RedisServer, Stack, scratch_database_url, wait_for

pytestmark = pytest.mark.postgres

ASSETS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (the fault tests stop and start one of their own)")
    workdir = tmp_path_factory.mktemp("faults")
    with scratch_database_url("registry_faults") as url:
        redis = RedisServer(workdir)
        redis.start()
        running = Stack(workdir, url, redis)
        try:
            running.start(assets=ASSETS)
            running.assets = iter(running.world["assets"])
            yield running
        finally:
            running.stop()
            redis.stop()


@pytest.fixture
def live(stack):
    """The stack with Redis and the worker up (a test that stopped them and failed leaves them down); on
    failure, pytest shows the processes' last log lines printed here."""
    if not stack.redis.running:
        stack.redis.start()
    if not stack.worker_running:
        stack.start_worker()
    yield stack
    for name in ("web", "worker", "beat"):
        print(f"--- {name} log ---\n{stack.log(name)[-3000:]}")


@pytest.fixture
def receivers():
    made = []

    def make(*statuses, hold=None):
        made.append(Receiver(*statuses, hold=hold))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def promote(stack, asset: str, *, callback_url: str | None = None) -> int:
    body = {
        "kind": "model",
        "name": asset,
        "version": 2,
        "stage": "production",
        "justification": "better auc",
    }
    if callback_url:
        body["callback_url"] = callback_url
    status, answer = stack.api("POST", "promotions", stack.world["ci"], body)
    assert status == 201, answer
    return answer["id"]


def act(stack, promotion_id: int, action: str, token: str, expected: str) -> None:
    body = {"comment": "ok"} if action in ("approve", "reject") else {}
    status, answer = stack.api("POST", f"promotions/{promotion_id}/{action}", token, body)
    assert (status, answer["status"] if status == 200 else answer) == (200, expected), answer


def approve_twice(stack, promotion_id: int) -> None:
    first, second = stack.world["reviewers"]
    act(stack, promotion_id, "approve", first, "pending")
    act(stack, promotion_id, "approve", second, "applied")  # the policy applies it on approval


def messages(stack, url: str) -> list[tuple]:
    """(webhook_id, status, attempts) of the outbox messages to url, oldest first."""
    return stack.query(
        "SELECT webhook_id, status, attempts FROM approvals_outboxmessage WHERE url = %s ORDER BY id", url
    )


def ids_received(receiver) -> collections.Counter:
    return collections.Counter(headers["webhook-id"] for headers, _ in receiver.deliveries)


def verify(secret, receiver) -> list[dict]:
    """Every delivery verified with the standardwebhooks library (it raises on a bad signature)."""
    return [Webhook(secret).verify(body, headers) for headers, body in receiver.deliveries]


def test_redis_stopped_while_promotions_are_decided_loses_nothing(live, receivers):
    receiver = receivers(204)
    assets = list(itertools.islice(live.assets, 3))
    live.redis.stop()
    started = time.monotonic()
    decided = []
    for asset in assets[:2]:  # every POST answers its committed result although nothing can be enqueued
        promotion_id = promote(live, asset, callback_url=receiver.url)
        approve_twice(live, promotion_id)
        decided.append(promotion_id)
    rejected = promote(live, assets[2], callback_url=receiver.url)
    act(live, rejected, "reject", live.world["reviewers"][0], "rejected")
    assert time.monotonic() - started < 30  # no POST waited long for the broker
    owed = messages(live, receiver.url)
    assert [status for _, status, _ in owed] == ["pending"] * 3
    assert receiver.deliveries == []

    live.redis.start()  # empty: the tasks were never queued; the sweep finds the messages
    expected = {webhook_id for webhook_id, _, _ in owed}
    wait_for(lambda: set(ids_received(receiver)) >= expected, 45, f"callbacks {expected} delivered")
    wait_for(
        lambda: [status for _, status, _ in messages(live, receiver.url)] == ["delivered"] * 3,
        15,
        "the outbox shows them delivered",
    )
    # At least once, never under another id: exactly the owed ids arrived, each signed.
    assert set(ids_received(receiver)) == expected
    payloads = verify(live.webhook_secret.encode(), receiver)
    assert {(p["data"]["id"], p["type"]) for p in payloads} == {
        *((promotion_id, "promotion.applied") for promotion_id in decided),
        (rejected, "promotion.rejected"),
    }


def test_a_worker_killed_mid_delivery_leaves_the_message_to_be_sent_again(live, receivers):
    hold = threading.Event()
    receiver = receivers(204, hold=hold)  # holds the first request open until released
    promotion_id = promote(live, next(live.assets), callback_url=receiver.url)
    act(live, promotion_id, "reject", live.world["reviewers"][0], "rejected")
    assert receiver.arrived.wait(20), "the callback never arrived"
    live.kill_worker()  # mid-attempt: the receiver has not answered
    [(webhook_id, status, attempts)] = messages(live, receiver.url)
    assert (status, attempts) == ("pending", 0)  # the attempt died with its transaction
    hold.set()

    live.start_worker()
    wait_for(lambda: messages(live, receiver.url)[0][1] == "delivered", 30, "delivered by the new worker")
    assert messages(live, receiver.url) == [(webhook_id, "delivered", 1)]
    assert ids_received(receiver) == {webhook_id: 2}  # the same message, the same id, twice
    first, second = verify(live.webhook_secret.encode(), receiver)
    assert first == second and first["data"]["id"] == promotion_id


def test_a_receiver_failing_three_times_then_succeeding(live, receivers):
    receiver = receivers(500, 503, 500, 204)
    promotion_id = promote(live, next(live.assets), callback_url=receiver.url)
    act(live, promotion_id, "reject", live.world["reviewers"][0], "rejected")
    wait_for(lambda: messages(live, receiver.url)[0][1] == "delivered", 45, "delivered after three failures")
    [(webhook_id, _, attempts)] = messages(live, receiver.url)
    log = live.query(
        "SELECT a.status_code, a.error, a.at FROM approvals_outboxattempt a"
        " JOIN approvals_outboxmessage m ON m.id = a.message_id WHERE m.url = %s ORDER BY a.id",
        receiver.url,
    )
    assert attempts == 4
    assert [(code, error) for code, error, _ in log] == [
        (500, "answered 500"),
        (503, "answered 503"),
        (500, "answered 500"),
        (204, ""),
    ]
    # The retries waited (1 s, 2 s, 4 s here, ±20 %), not hammered the receiver.
    gaps = [(b - a).total_seconds() for (_, _, a), (_, _, b) in itertools.pairwise(log)]
    assert gaps[0] >= 0.8 and gaps[1] >= 1.6 and gaps[2] >= 3.2, gaps
    assert ids_received(receiver) == {webhook_id: 4}
    assert {p["data"]["id"] for p in verify(live.webhook_secret.encode(), receiver)} == {promotion_id}


def test_a_subscription_gets_each_event_of_a_promotion_once(live, receivers):
    receiver = receivers(204)
    asset = next(live.assets)
    admin = live.world["admin"]
    status, subscription = live.api(
        "POST", "webhooks", admin, {"url": receiver.url, "events": ["*"], "asset": f"model/{asset}"}
    )
    if status == 404:
        pytest.skip("needs the webhooks app (POST /api/v1/webhooks answers 404)")
    assert status == 201, subscription
    assert subscription["secret"].startswith("whsec_")
    promotion_id = promote(live, asset)
    approve_twice(live, promotion_id)

    wanted = collections.Counter({"promotion.requested": 1, "promotion.approved": 2, "promotion.applied": 1})

    def received():
        payloads = [json.loads(body) for _, body in receiver.deliveries]
        return collections.Counter(p["type"] for p in payloads if p["type"] in wanted)

    wait_for(lambda: received() >= wanted, 45, f"{wanted} delivered")
    path = f"webhooks/{subscription['id']}/deliveries"

    def deliveries():
        status, answer = live.api("GET", path, admin)
        assert status == 200, answer
        return [(row["event_type"], row["status"]) for row in answer["results"]]

    wait_for(
        lambda: all(status == "delivered" for _, status in deliveries()),
        15,
        lambda: f"the subscription's deliveries all delivered: {deliveries()}",
    )
    assert received() == wanted  # each once
    assert all(count == 1 for count in ids_received(receiver).values())
    journey = [p for p in verify(subscription["secret"], receiver) if p["type"] in wanted]
    assert {p["data"]["promotion"]["id"] for p in journey} == {promotion_id}
