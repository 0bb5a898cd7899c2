"""event_body: the bytes of an event's body from its columns, as audit_record writes them."""

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from audit.models import Action, AuditEvent
from audit.services import TargetRef, audit_record, event_body
from core.source import Source
from registry.models import Stage

pytestmark = pytest.mark.django_db


def test_event_body_rebuilds_the_recorded_bytes(admin):
    with transaction.atomic():
        audit_record(
            actor=admin,
            action=Action.ASSET_UPDATED,
            target=Stage.objects.first(),
            source=Source.cli(),
            changes={"score": 0.5, "tags": ["a", "b"], "n": 2**60},
            asset_id=7,
        )
        audit_record(
            actor=None,
            action=Action.LOGIN_FAILED,
            target=TargetRef(kind="accounts.user", id="", repr="nobody"),
            source=Source.cli(),
            changes={"username": "nobody"},
        )
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) == 2
    for event in events:
        columns = model_to_dict(event) | {"seq": event.seq, "occurred_at": event.occurred_at}
        assert event_body(columns) == bytes(event.body)
