"""Shared fixtures: API clients, and the PostgreSQL-only marker."""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL to a PostgreSQL database)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def user(django_user_model):
    """A registry admin: the registry tests are about its rules, not about who may use them."""
    return django_user_model.objects.create_user("alice", password="alice-password", global_role="admin")


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def anon():
    return APIClient()
