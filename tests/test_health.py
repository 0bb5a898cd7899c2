"""Readiness probes: bounded in time, the failing check named, the outage logged once."""

import logging
import socket
import time

import pytest

from core import health

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_outage():
    """Each test starts with no check failing (the process remembers outages to log each once)."""
    health._failing.clear()
    yield
    health._failing.clear()


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port


def test_readyz_answers_quickly_and_names_an_unreachable_broker(client, settings, closed_port):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["broker"]) == ("unavailable", "ok", "unavailable")
    # One connection attempt with a 1 s budget, no retry after a pause (which held the worker 2-3 s).
    assert elapsed < 1.5


def test_an_outage_is_logged_once_and_its_end_once(client, settings, closed_port, caplog):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert client.get("/readyz").status_code == 503
        for _ in range(2):
            health.note("broker", True)
    messages = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0][:2] == ("ERROR", "core.health")
    assert messages[0][2].startswith("readiness: broker unavailable: OperationalError")
    assert messages[1] == ("INFO", "core.health", "readiness: broker available again")


def test_an_app_adds_a_check_by_name(client, monkeypatch):
    monkeypatch.setattr(health, "_registered", {})
    health.register_check("signer", lambda: "stopped")
    health.register_check("not-configured", lambda: None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "signer": "stopped"}
