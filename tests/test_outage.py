"""Failures answer the truth: the database unreachable answers 503 with Retry-After (logged once per outage, the
app recovering by itself); a broker or a callback failing after the commit still answers the committed result;
/readyz fails when the outbox lags.

The PostgreSQL test puts a loopback TCP proxy between the app and the server and stops it: the outage as a
client sees it (connections dropped, then refused), without touching the server.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time

import pytest
from django.db import OperationalError, connection, connections
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import Scope
from approvals import tasks
from approvals.models import OutboxMessage, PromotionRequest
from audit.models import AuditEvent
from config.celery import app as celery_app
from core import health, outage
from registry.models import StagePointer
from tests.factories import AssetFactory, TokenFactory, UserFactory
from tests.helpers import World, api_client


@pytest.fixture(autouse=True)
def no_outage():
    """Each test starts with nothing failing (the process remembers outages to log each once)."""
    health._failing.clear()
    yield
    health._failing.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proxy:
    """A TCP forwarder on 127.0.0.1 to upstream: stop() closes the listener and every connection through it
    (the server seems gone), start() listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxied_database(transactional_db):
    """The default connection goes through a Proxy to the test database; restored afterwards."""
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"]
    proxy = Proxy((saved[0] or "127.0.0.1", int(saved[1] or 5432)))
    proxy.start()
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", proxy.port
    try:
        yield proxy
    finally:
        proxy.stop()
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = saved


def problem(response) -> dict:
    assert response["Content-Type"] == "application/problem+json", response.content
    return response.json()


@pytest.mark.postgres
def test_the_database_stopped_answers_503_logged_once_and_recovers(proxied_database, caplog):
    asset = AssetFactory(name="fraud")
    person = UserFactory(username="root", global_role="admin")
    # A bearer token: DRF's authentication is the first to need the database.
    api = api_client(token=TokenFactory(account=person, scopes=[Scope.READ, Scope.WRITE]).token)
    page = Client()
    page.force_login(person)
    assert page.get("/registry/").status_code == 200
    assert api.get(f"/api/v1/models/{asset.name}").status_code == 200
    assert Client().get("/readyz").status_code == 200

    proxied_database.stop()
    with caplog.at_level(logging.INFO):
        started = time.monotonic()
        ready = Client().get("/readyz")
        assert time.monotonic() - started < 2
        assert ready.status_code == 503
        assert ready.json()["database"] == "unavailable"

        for response in (
            api.get(f"/api/v1/models/{asset.name}"),
            api.post("/api/v1/models", {"name": "churn"}, format="json"),
            api.get("/api/v1/models"),
        ):
            assert response.status_code == 503
            assert response["Retry-After"] == "5"
            body = problem(response)
            assert (body["type"], body["status"]) == ("service-unavailable", 503)
            assert body["detail"].startswith("The database is unavailable")

        response = page.get("/registry/")
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert response["Content-Type"].startswith("text/html")
        assert "The database is unavailable" in response.content.decode()

        # One line for the outage, with its reason, and no traceback.
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].name == "core.health"
        assert errors[0].getMessage().startswith("readiness: database unavailable: OperationalError")
        assert all(r.exc_info is None for r in caplog.records)
        caplog.clear()

        # Back: no restart, no reconnection by hand.
        proxied_database.start()
        assert api.get(f"/api/v1/models/{asset.name}").status_code == 200
        assert page.get("/registry/").status_code == 200
        assert Client().get("/readyz").status_code == 200
        created = api.post("/api/v1/models", {"name": "churn"}, format="json")
        assert created.status_code == 201, created.content
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert ("INFO", "readiness: database available again") in messages
    assert not [m for m in messages if m[0] != "INFO"], messages
