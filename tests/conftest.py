"""Shared fixtures: API clients, the PostgreSQL-only marker, and loopback-only name resolution."""

import ipaddress
import socket

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


LOOPBACK_NAMES = {"localhost", "testserver"}


def _is_loopback(host) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_resolution(monkeypatch):
    """Tests resolve loopback names only: any other host name (a callback URL a test or a fuzzer made up)
    fails as an unknown name instead of asking the machine's resolver."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve loopback names only, not {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


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
