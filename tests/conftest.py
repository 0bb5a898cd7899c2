"""Shared fixtures: the personas and their clients, the PostgreSQL-only marker, and loopback-only name
resolution.

The personas, each made once here (modules with a special cast arrange their own):

| fixture           | username | who                                                                      |
|-------------------|----------|--------------------------------------------------------------------------|
| `admin`           | root     | global role admin                                                        |
| `auditor`         | audrey   | global role auditor: reads everything, changes nothing                   |
| `manager`         | mia      | holds manage on `fraud`                                                  |
| `contributor`     | cora     | holds contribute on `fraud`                                              |
| `reviewer`        | rita     | holds review on `fraud`                                                  |
| `viewer`          | vera     | holds view on `fraud`                                                    |
| `outsider`        | olly     | a person with no role anywhere                                           |
| `service_account` | ci-bot   | a service account (CI), with no role until a test grants one             |

`fraud` is model/fraud; a module that defines its own `fraud` fixture gives the personas its asset instead.
"""

import ipaddress
import socket

import pytest

from tests.factories import AssetFactory, ServiceAccountFactory, UserFactory, grant
from tests.helpers import IS_POSTGRES, api_client


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


# Personas -----------------------------------------------------------------------------------------


@pytest.fixture
def fraud(db):
    return AssetFactory(name="fraud")


@pytest.fixture
def admin(db):
    """A registry admin: the registry tests are about its rules, not about who may use them."""
    return UserFactory(username="root", password="root-password", global_role="admin")


@pytest.fixture
def auditor(db):
    return UserFactory(username="audrey", global_role="auditor")


@pytest.fixture
def manager(fraud):
    person = UserFactory(username="mia")
    grant(person, fraud, "manage")
    return person


@pytest.fixture
def contributor(fraud):
    person = UserFactory(username="cora")
    grant(person, fraud, "contribute")
    return person


@pytest.fixture
def reviewer(fraud):
    person = UserFactory(username="rita")
    grant(person, fraud, "review")
    return person


@pytest.fixture
def viewer(fraud):
    person = UserFactory(username="vera")
    grant(person, fraud, "view")
    return person


@pytest.fixture
def outsider(db):
    return UserFactory(username="olly")


@pytest.fixture
def service_account(db):
    return ServiceAccountFactory(username="ci-bot")


# Clients ------------------------------------------------------------------------------------------


@pytest.fixture
def api(admin):
    """An API client acting as the admin."""
    return api_client(admin)


@pytest.fixture
def anon():
    """An anonymous API client."""
    return api_client()


@pytest.fixture
def api_as():
    """api_as(user) is an API client acting as user."""
    return api_client


@pytest.fixture(autouse=True)
def audit_witness(settings, tmp_path):
    """Every test's signed checkpoints go to a witness directory of its own, as in production."""
    settings.AUDIT_WITNESS_DIR = str(tmp_path / "witness")
    return tmp_path / "witness"


@pytest.fixture(autouse=True)
def empty_cache():
    """Every test starts with an empty cache: the refusals counted by earlier tests (failed sign-ins, refused
    OIDC exchanges, all from 127.0.0.1) would lock later ones out."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def oidc_issuer():
    """A local OpenID Connect issuer on 127.0.0.1 (tests/oidc_issuer.py), with the key cache emptied."""
    from accounts.oidc import KEYS
    from tests.oidc_issuer import Issuer

    KEYS.clear()
    issuer = Issuer().start()
    yield issuer
    issuer.stop()
    KEYS.clear()
