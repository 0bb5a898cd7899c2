"""The audit log: canonical bodies, gapless positions, a verifiable chain, and no ORM updates or deletes."""

import json

import pytest
import rfc8785
from django.db import connection, transaction

from audit import triggers
from audit.canonical import GENESIS_CHAIN, chain_hash, jsonable, leaf_hash
from audit.models import Action, AppendOnlyError, AuditEvent
from audit.services import audit_record
from core.source import Source
from registry.models import Stage

pytestmark = pytest.mark.django_db


def record(user, **changes):
    with transaction.atomic():
        return audit_record(
            actor=user,
            action=Action.ASSET_UPDATED,
            target=Stage.objects.first(),
            source=Source.cli(),
            changes=changes,
        )


def verify_chain():
    """Recompute every leaf and chain hash from the stored bodies; return the first bad seq or None."""
    previous = GENESIS_CHAIN
    for expected_seq, event in enumerate(AuditEvent.objects.order_by("seq"), start=1):
        body = bytes(event.body)
        if event.seq != expected_seq or json.loads(body)["seq"] != expected_seq:
            return expected_seq
        if rfc8785.dumps(json.loads(body)) != body or leaf_hash(body) != bytes(event.leaf_hash):
            return event.seq
        previous = chain_hash(previous, leaf_hash(body))
        if previous != bytes(event.chain_hash):
            return event.seq
    return None


def test_events_are_canonical_and_chained(user):
    for i in range(5):
        record(user, step=i, score=0.1 + i)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert verify_chain() is None
    body = json.loads(bytes(AuditEvent.objects.get(seq=2).body))
    assert body["changes"] == {"step": 1, "score": "1.1"}  # floats are recorded as decimal strings
    assert body["actor"] == {"kind": "user", "id": user.pk, "name": "alice"}
    assert body["occurred_at"].endswith("Z") and len(body["occurred_at"]) == 27


def test_rolled_back_transaction_leaves_no_gap(user):
    record(user)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(
            actor=user, action=Action.ASSET_UPDATED, target=Stage.objects.first(), source=Source.cli()
        )
        raise RuntimeError("the change failed after its event was written")
    record(user)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2]
    assert verify_chain() is None


def test_orm_refuses_update_and_delete(user):
    event = record(user)
    event.action = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    assert AuditEvent.objects.get().action == Action.ASSET_UPDATED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_record_outside_a_transaction_is_refused(user):
    with pytest.raises(RuntimeError):
        audit_record(
            actor=user, action=Action.ASSET_UPDATED, target=Stage.objects.first(), source=Source.cli()
        )


def test_tampering_is_detected(user):
    for i in range(3):
        record(user, step=i)
    assert verify_chain() is None
    # Rewrite event 2's body as someone with direct database access could (bypassing the ORM guard).
    tampered = bytes(AuditEvent.objects.get(seq=2).body).replace(b'"step":1', b'"step":9')
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET body = %s WHERE seq = 2", [tampered])
    assert verify_chain() == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, "1.5"),
        (2**60, str(2**60)),
        ({"b": 1, "a": [True, None]}, {"b": 1, "a": [True, None]}),
        ({1, 2}, [1, 2]),
    ],
)
def test_jsonable_restricts_types(value, expected):
    assert jsonable(value) == expected


def test_jsonable_refuses_non_finite():
    with pytest.raises(ValueError):
        jsonable(float("inf"))


def test_spliced_body_is_exactly_the_canonical_form(user):
    """The body is joined from two canonical halves around seq and time: it is RFC 8785 of the whole."""
    event = record(user, source={"commit": "abc"}, note="é ☃ \u2028", nested={"seq": 1, "v": 2}, n=2**60)
    body = bytes(event.body)
    assert rfc8785.dumps(json.loads(body)) == body
    assert json.loads(body)["changes"]["source"] == {"commit": "abc"}
