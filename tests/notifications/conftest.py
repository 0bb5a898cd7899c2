"""The promotion world of tests/helpers.py, its people given e-mail addresses."""

import pytest

from tests.helpers import World


@pytest.fixture
def world(db):
    w = World()
    for person in (w.r1, w.r2, w.r3, w.manager, w.author, w.outsider, w.ci):
        person.email = f"{person.username}@example.test"
        person.save(update_fields=["email"])
    return w
