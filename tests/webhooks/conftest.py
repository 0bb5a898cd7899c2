"""Webhook tests: receivers on 127.0.0.1 (allow-listed), helpers to subscribe and to make events."""

import itertools

import pytest

from tests.helpers import Receiver

_descriptions = itertools.count()


@pytest.fixture
def receivers(settings):
    """receivers(*statuses) is a loopback receiver; 127.0.0.1 is allow-listed for the test."""
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    made = []

    def make(*statuses, **options):
        made.append(Receiver(*statuses, **options))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()
