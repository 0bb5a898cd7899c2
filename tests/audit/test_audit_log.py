"""The audit log: canonical bodies, gapless positions, a verifiable chain, and no ORM updates or deletes."""

import json

import pytest
import rfc8785
from django.db import connection, transaction

from audit import triggers
from audit.canonical import jsonable
from audit.models import Action, AppendOnlyError, AuditEvent
from audit.services import audit_record
from core.source import Source
from registry.models import Stage
from tests.helpers import verify_chain

pytestmark = pytest.mark.django_db


def record(actor, **changes):
    with transaction.atomic():
        return audit_record(
            actor=actor,
            action=Action.ASSET_UPDATED,
            target=Stage.objects.first(),
            source=Source.cli(),
            changes=changes,
        )


def test_events_are_canonical_and_chained(admin):
    for i in range(5):
        record(admin, step=i, score=0.1 + i)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert verify_chain() is None
    body = json.loads(bytes(AuditEvent.objects.get(seq=2).body))
    assert body["changes"] == {"step": 1, "score": "1.1"}  # floats are recorded as decimal strings
    assert body["actor"] == {"kind": "user", "id": admin.pk, "name": "root"}
    assert body["occurred_at"].endswith("Z") and len(body["occurred_at"]) == 27


def test_rolled_back_transaction_leaves_no_gap(admin):
    record(admin)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(
            actor=admin, action=Action.ASSET_UPDATED, target=Stage.objects.first(), source=Source.cli()
        )
        raise RuntimeError("the change failed after its event was written")
    record(admin)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2]
    assert verify_chain() is None


def test_orm_refuses_update_and_delete(admin):
    event = record(admin)
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
def test_record_outside_a_transaction_is_refused(admin):
    with pytest.raises(RuntimeError):
        audit_record(
            actor=admin, action=Action.ASSET_UPDATED, target=Stage.objects.first(), source=Source.cli()
        )


def test_tampering_is_detected(admin):
    for i in range(3):
        record(admin, step=i)
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


def test_spliced_body_is_exactly_the_canonical_form(admin):
    """The body is joined from two canonical halves around seq and time: it is RFC 8785 of the whole."""
    event = record(admin, source={"commit": "abc"}, note="é ☃ \u2028", nested={"seq": 1, "v": 2}, n=2**60)
    body = bytes(event.body)
    assert rfc8785.dumps(json.loads(body)) == body
    assert json.loads(body)["changes"]["source"] == {"commit": "abc"}
