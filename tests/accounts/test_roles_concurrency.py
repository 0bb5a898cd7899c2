"""Races on PostgreSQL: two admins demoting each other at once leave one admin, and neither call deadlocks."""

import pytest

from accounts.models import User
from accounts.permissions import ADMINS
from accounts.services import user_update
from core.exceptions import Conflict
from core.source import Source
from tests.factories import UserFactory
from tests.helpers import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.mark.parametrize("change", [{"global_role": "none"}, {"is_active": False}])
def test_two_admins_stepping_down_at_once_leave_one(change):
    for _ in range(5):
        User.objects.all().delete()
        admins = [UserFactory(username=name, global_role="admin") for name in ("ada", "bea")]

        def step_down(i, admins=admins):
            user_update(actor=admins[i], source=Source.cli(), user=admins[i], **change)

        errors = run_at_once(step_down, 2)
        assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
        assert errors[0].type == "last-admin"
        assert User.objects.filter(ADMINS).count() == 1


def test_two_admins_demoting_each_other_at_once_leave_one():
    for _ in range(5):
        User.objects.all().delete()
        admins = [UserFactory(username=name, global_role="admin") for name in ("ada", "bea")]

        def demote(i, admins=admins):
            user_update(actor=admins[i], source=Source.cli(), user=admins[1 - i], global_role="none")

        errors = run_at_once(demote, 2)
        # The second demotion is refused: either as the last admin's, or because its actor is no admin now.
        assert len(errors) == 1, errors
        assert User.objects.filter(ADMINS).count() == 1
