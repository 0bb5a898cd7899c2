"""A small world for promotion tests: one model, its reviewers, a requester, a production policy."""

import pytest

from tests.helpers import World


@pytest.fixture
def world(db):
    return World()
