"""Events positioned at commit on PostgreSQL (audit.appender: audit_defer and the deferred trigger).

These tests commit for real (transactional test cases): the deferred trigger runs only at a real COMMIT.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from audit import services
from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
from audit.models import Action, AuditEvent, AuditHead
from audit.services import TargetRef, audit_record, event_body
from audit.verification import verify_log
from core.source import Source

# serialized_rollback: the flush after each test empties every table, the seeded log head included.
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.postgres]

SOURCE = Source.cli()


def _target(n) -> TargetRef:
    return TargetRef("registry.asset", str(n), f"model/m{n}")


def _record(action=Action.ASSET_UPDATED, n=1, **kwargs) -> AuditEvent:
    return audit_record(
        actor=None, action=action, target=_target(n), source=SOURCE, changes={"n": n}, asset_id=None, **kwargs
    )


def _pending() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_pending")
        return cursor.fetchone()[0]


def _head() -> int:
    return AuditHead.objects.values_list("seq", flat=True).get(pk=1)


def _chain_is_whole() -> list[int]:
    previous = GENESIS_CHAIN
    events = list(AuditEvent.objects.order_by("seq"))
    for event in events:
        assert bytes(event.leaf_hash) == leaf_hash(bytes(event.body))
        previous = chain_hash(previous, bytes(event.leaf_hash))
        assert bytes(event.chain_hash) == previous
    assert _head() == (events[-1].seq if events else 0)
    assert verify_log(record=False).ok
    return [event.seq for event in events]


@pytest.fixture(autouse=True)
def _no_listeners(monkeypatch):
    # The apps' listeners (webhooks, e-mail) read tables of their own; these tests bring their own.
    monkeypatch.setattr(services, "_listeners", [])
    monkeypatch.setattr(services, "_wanted", {})
    monkeypatch.setattr(services, "_actions", {})


def test_an_event_nothing_needs_is_appended_when_its_transaction_commits():
    before = _head()
    with transaction.atomic():
        event = _record()
        assert event.seq is None and event.body is None  # not positioned yet
        assert _pending() == 1 and _head() == before
        assert not AuditEvent.objects.exists()
    assert _pending() == 0
    stored = AuditEvent.objects.get()
    assert stored.seq == before + 1 and stored.action == Action.ASSET_UPDATED
    assert stored.changes == {"n": 1} and stored.target_repr == "model/m1"
    # The bytes are the ones the Python path writes for the same columns.
    columns = {field.name: getattr(stored, field.name) for field in AuditEvent._meta.fields}
    columns["actor_id"] = stored.actor_id
    assert bytes(stored.body) == event_body(columns)
    assert _chain_is_whole() == [1]


def test_the_events_of_a_transaction_keep_the_order_they_were_recorded_in():
    with transaction.atomic():
        _record(n=1)
        _record(n=2)
        at_once = _record(n=3, positioned=True)  # appends the two pending events first
        assert at_once.seq == 3 and _pending() == 0
        _record(n=4)
    with transaction.atomic():
        _record(n=5)
        _record(n=6)
    events = AuditEvent.objects.order_by("seq")
    assert [event.changes["n"] for event in events] == [1, 2, 3, 4, 5, 6]
    assert _chain_is_whole() == [1, 2, 3, 4, 5, 6]
    times = [event.occurred_at for event in events]
    assert times == sorted(times)


def test_a_rolled_back_transaction_or_savepoint_leaves_no_event_and_no_gap():
    with transaction.atomic():
        _record(n=1)
        transaction.set_rollback(True)
    with transaction.atomic():
        _record(n=2)
        try:
            with transaction.atomic():
                _record(n=3)
                raise RuntimeError("the inner change fails")
        except RuntimeError:
            pass
        _record(n=4)
    assert _pending() == 0
    assert [event.changes["n"] for event in AuditEvent.objects.order_by("seq")] == [2, 4]
    assert _chain_is_whole() == [1, 2]


def test_an_event_a_listener_wants_is_appended_at_once_and_the_listener_sees_it(monkeypatch):
    from registry.models import Asset
    from tests.factories import AssetFactory

    seen = []

    def listener(event):
        seen.append((event.seq, event.changes["n"]))

    def wanted(asset_id, action):
        return Asset.objects.filter(kind="model", name="wanted")

    monkeypatch.setattr(services, "_listeners", [listener])
    monkeypatch.setattr(services, "_wanted", {listener: wanted})
    with transaction.atomic():
        assert _record(n=1).seq is None  # no such asset: nothing wants it
    AssetFactory(kind="model", name="wanted")
    with transaction.atomic():
        event = _record(n=2)
        assert event.seq is not None
    assert seen == [(event.seq, 2)]
    assert _chain_is_whole()[-1] == event.seq


def test_a_listener_called_for_every_event_of_an_action_makes_those_events_append_at_once(monkeypatch):
    seen = []

    def listener(event):
        seen.append(event.seq)

    monkeypatch.setattr(services, "_listeners", [listener])
    monkeypatch.setattr(services, "_actions", {listener: frozenset({"asset.archived"})})
    with transaction.atomic():
        assert _record(Action.ASSET_UPDATED, n=1).seq is None
        archived = _record(Action.ASSET_ARCHIVED, n=2)
    assert seen == [archived.seq] == [2]
    assert _chain_is_whole() == [1, 2]


def test_appending_at_commit_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(services, "APPEND_AT_COMMIT", False)
    with transaction.atomic():
        assert _record().seq == 1


def test_concurrent_writers_get_gapless_positions_in_commit_order():
    writers, each = 6, 15
    errors = []
    committed = []
    lock = threading.Lock()

    def write(w):
        try:
            for i in range(each):
                n = w * 1000 + i
                with transaction.atomic():
                    _record(n=n)
                    if i % 5 == 4:
                        transaction.set_rollback(True)  # some changes fail: their events never exist
                        continue
                with lock:
                    committed.append(n)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = _chain_is_whole()
    assert seqs == list(range(1, len(committed) + 1))
    assert sorted(event.changes["n"] for event in AuditEvent.objects.all()) == sorted(committed)
    assert _pending() == 0
    # Each writer's own events are in the order it committed them.
    for w in range(writers):
        mine = [
            event.changes["n"]
            for event in AuditEvent.objects.order_by("seq")
            if event.changes["n"] // 1000 == w
        ]
        assert mine == sorted(mine)
