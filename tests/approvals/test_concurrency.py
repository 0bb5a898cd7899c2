"""Races on PostgreSQL: the stage moves exactly once, and one of two conflicting decisions wins."""

import pytest

from approvals.models import Policy, PromotionRequest, Review
from approvals.services import promotion_approve, promotion_cancel, promotion_reject
from audit.models import AuditEvent
from core.exceptions import Conflict
from core.source import Source
from registry.models import StageHistory
from tests.helpers import run_at_once, verify_chain

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def pending(world):
    response = world.request()
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_two_reviewers_at_once_apply_exactly_once(world):
    pk = pending(world)
    reviewers = [world.r1, world.r2]
    errors = run_at_once(
        lambda i: promotion_approve(actor=reviewers[i], source=Source.cli(), promotion_id=pk), 2
    )
    assert errors == []
    assert PromotionRequest.objects.get(pk=pk).status == "applied"
    assert Review.objects.filter(promotion_id=pk).count() == 2
    assert StageHistory.objects.filter(promotion_id=pk).count() == 1
    assert AuditEvent.objects.filter(action="promotion.applied").count() == 1
    assert verify_chain() is None


@pytest.mark.parametrize("rival", ["reject", "cancel"])
def test_approve_racing_reject_or_cancel_one_wins(world, rival):
    Policy.objects.filter(pk=world.policy.pk).update(required_approvals=1)
    for _ in range(5):
        pk = pending(world)

        def act(i, pk=pk):
            if i == 0:
                promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=pk)
            elif rival == "reject":
                promotion_reject(actor=world.r2, source=Source.cli(), promotion_id=pk, comment="no")
            else:
                promotion_cancel(actor=world.manager, source=Source.cli(), promotion_id=pk)

        errors = run_at_once(act, 2)
        assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
        assert errors[0].type == "request-not-pending"
        status = PromotionRequest.objects.get(pk=pk).status
        assert status in {"applied", "rejected" if rival == "reject" else "cancelled"}
        assert StageHistory.objects.filter(promotion_id=pk).count() == (1 if status == "applied" else 0)
        if status == "applied":  # start the next round from a version that is not in production
            PromotionRequest.objects.filter(pk=pk).update(status="applied")
            world.asset.stage_pointers.filter(stage=world.production).update(version=world.v1)


def test_concurrent_replays_of_one_key_create_one_request(world):
    responses = []

    def replay(i):
        responses.append(world.request(key="same-key"))

    assert run_at_once(replay, 8) == []
    assert sorted(response.status_code for response in responses) == [201] * 8
    assert len({response.json()["id"] for response in responses}) == 1
    assert sum(response.get("Idempotent-Replayed") == "true" for response in responses) == 7
    assert PromotionRequest.objects.count() == 1
    assert AuditEvent.objects.filter(action="promotion.requested").count() == 1


def test_approval_racing_registrations_does_not_deadlock(world):
    """Approvals that apply and registrations of new versions lock the asset in the same order."""
    from guardian.shortcuts import assign_perm

    from registry.services import version_register

    Policy.objects.filter(pk=world.policy.pk).update(required_approvals=1)
    assign_perm("registry.contribute_asset", world.manager, world.asset)
    for round_ in range(5):
        pk = pending(world) if round_ == 0 else world.request(version=2 + round_ % 2).json()["id"]

        def act(i, pk=pk, round_=round_):
            if i == 0:
                promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=pk)
            else:
                version_register(
                    actor=world.manager,
                    source=Source.cli(),
                    asset=world.asset,
                    data={"digest": f"sha256:{round_:064x}"},
                )

        assert run_at_once(act, 2) == []
        world.asset.stage_pointers.filter(stage=world.production).update(version=world.v1)
    assert verify_chain() is None
