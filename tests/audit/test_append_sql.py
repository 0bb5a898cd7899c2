"""The one-statement append of PostgreSQL (audit.appender) writes the bytes the Python steps write."""

import datetime as dt

import pytest
from django.db import connection, transaction

from audit import services
from audit.canonical import GENESIS_CHAIN, chain_hash, format_time, leaf_hash
from audit.models import Action, AuditEvent, AuditHead
from audit.services import TargetRef, audit_record
from audit.verification import verify_log
from core.source import Source

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CASES = [
    # (actor, action, target, changes, asset_id)
    ("admin", Action.ASSET_UPDATED, TargetRef("registry.asset", "7", "model/fraud"), {"score": 0.5}, 7),
    (None, Action.LOGIN_FAILED, TargetRef("accounts.user", "", "nobody"), {"username": 'nøbody ✓ "q"'}, None),
    (
        "admin",
        Action.VERSION_CREATED,
        TargetRef("registry.assetversion", "12", "model/fraud v3"),
        {"after": {"number": 3, "n": 2**60, "tags": ["b", "a"], "metrics": {"auc": 0.9, "f1": 1e-7}}},
        12,
    ),
]


SOURCE = Source.cli()


def _record(actor, action, target, changes, asset_id) -> AuditEvent:
    with transaction.atomic():
        return audit_record(
            actor=actor, action=action, target=target, source=SOURCE, changes=changes, asset_id=asset_id
        )


@pytest.mark.parametrize("case", range(len(CASES)))
def test_both_paths_write_the_same_event(case, admin, monkeypatch):
    actor_name, action, target, changes, asset_id = CASES[case]
    actor = admin if actor_name else None
    with transaction.atomic():
        in_database = _record(actor, action, target, changes, asset_id)
        stored = AuditEvent.objects.get(seq=in_database.seq)
        transaction.set_rollback(True)  # the head goes back: the Python path appends at the same position
    monkeypatch.setattr(services, "APPEND_IN_DATABASE", False)
    monkeypatch.setattr(services, "_clock_after_lock", lambda: in_database.occurred_at)
    in_python = _record(actor, action, target, changes, asset_id)
    assert in_python.seq == stored.seq == in_database.seq
    assert bytes(stored.body) == in_database.body == in_python.body
    assert bytes(stored.leaf_hash) == in_database.leaf_hash == in_python.leaf_hash
    assert bytes(stored.chain_hash) == in_database.chain_hash == in_python.chain_hash
    assert stored.occurred_at == in_python.occurred_at
    assert stored.changes == in_python.changes and stored.context == in_python.context


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 12, 2, 3, 4, 5, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 1, 1, 2, 3, 40, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    ],
)
def test_the_database_writes_times_as_format_time(moment):
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")  # the session's zone does not matter
        cursor.execute("SELECT audit_format_time(%s)", [moment])
        (text,) = cursor.fetchone()
        cursor.execute("SET TIME ZONE 'UTC'")
    assert text == format_time(moment)


def test_the_database_path_keeps_the_chain_and_the_head(admin):
    for case in CASES:
        _record(admin if case[0] else None, *case[1:])
    events = list(AuditEvent.objects.order_by("seq"))
    assert [event.seq for event in events] == [1, 2, 3]
    previous = GENESIS_CHAIN
    for event in events:
        assert bytes(event.leaf_hash) == leaf_hash(bytes(event.body))
        previous = chain_hash(previous, bytes(event.leaf_hash))
        assert bytes(event.chain_hash) == previous
        assert events[0].occurred_at <= event.occurred_at
    head = AuditHead.objects.get()
    assert (head.seq, bytes(head.chain_hash)) == (3, previous)
    assert verify_log(record=False).ok


def test_the_database_path_is_one_statement(admin, django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(services, "_listeners", [])  # what listeners read is theirs (webhooks: one query)
    with transaction.atomic(), django_assert_num_queries(1):
        audit_record(actor=admin, action=Action.ASSET_UPDATED, target=admin, source=Source.cli())


def test_a_listener_is_called_only_when_wanted(admin, monkeypatch):
    from registry.models import Asset
    from tests.factories import AssetFactory

    called = []

    def listener(event):
        called.append((event.action, event.asset_id))

    def wanted(asset_id, action):
        # Rows only for events about an existing model, and only for updates.
        return Asset.objects.filter(pk=asset_id, kind="model" if action == "asset.updated" else "none")

    monkeypatch.setattr(services, "_listeners", [listener])
    monkeypatch.setattr(services, "_wanted", {listener: wanted})
    first, second = AssetFactory(), AssetFactory()
    # The question is compiled once per action and reused with each event's asset id.
    for asset_id in (first.pk, first.pk + 1000, second.pk, None):
        _record(admin, Action.ASSET_UPDATED, admin, {}, asset_id)
        _record(admin, Action.ASSET_ARCHIVED, admin, {}, asset_id)
    assert called == [("asset.updated", first.pk), ("asset.updated", second.pk)]


def test_in_a_test_case_transaction_the_event_is_appended_at_once(admin):
    # Django's TestCase rolls its transaction back: an event waiting for the commit would never be written.
    with transaction.atomic():
        event = audit_record(actor=admin, action=Action.ASSET_UPDATED, target=admin, source=SOURCE)
    assert event.seq is not None and AuditEvent.objects.filter(seq=event.seq).exists()
