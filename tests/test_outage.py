"""Failures answer the truth: the database unreachable answers 503 with Retry-After (logged once per outage,
the app recovering by itself); a broker or a callback failing after the commit still answers the committed
result; /readyz fails when the outbox lags.

The PostgreSQL test puts a loopback TCP proxy between the app and the server and stops it: the outage as a
client sees it (connections dropped, then refused), without touching the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import sqlite3
import threading
import time

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
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
            # shutdown wakes the thread blocked in accept(): a close alone would let it take one more.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            if self.listener is not listener:  # stopped meanwhile
                client.close()
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
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# Transactional (the connection is closed and opened again mid-test); the seeded stages restored afterwards.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def proxied_database():
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
@committed
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


# The same answers without PostgreSQL: the connection made to fail ----------------------------------------


def refused(*args, **kwargs):
    raise OperationalError("connection failed: Connection refused")


@pytest.fixture
def database_down(monkeypatch):
    """Every new statement fails as an unreachable server does (the connection is refused)."""

    def down():
        monkeypatch.setattr(connection, "ensure_connection", refused)
        connection.connection = None  # so that the next statement must connect

    return down


@committed
def test_a_refused_connection_answers_503_for_api_and_pages_logged_once(database_down, caplog):
    person = UserFactory(username="root", global_role="admin")
    api = api_client(token=TokenFactory(account=person, scopes=[Scope.READ, Scope.WRITE]).token)
    page = Client()
    page.force_login(person)
    connection.close()
    database_down()
    with caplog.at_level(logging.INFO):
        for response in (api.get("/api/v1/models"), api.post("/api/v1/models", {"name": "x"}, format="json")):
            assert (response.status_code, response["Retry-After"]) == (503, "5")
            assert problem(response)["type"] == "service-unavailable"
        response = page.get("/registry/")
        assert (response.status_code, response["Retry-After"]) == (503, "5")
        assert b"The database is unavailable. Try again in 5 seconds." in response.content
        assert Client().get("/readyz").json()["database"] == "unavailable"
    assert [(r.levelname, r.name) for r in caplog.records] == [("ERROR", "core.health")]


@pytest.mark.django_db
def test_retry_after_is_a_setting(settings):
    settings.OUTAGE_RETRY_AFTER_SECONDS = 30
    request = Client().get("/healthz").wsgi_request
    response = outage.unavailable_response(request, OperationalError("server closed the connection"))
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert b"Try again in 30 seconds." in response.content


@committed
def test_an_outage_met_by_a_middleware_answers_503_too(settings, monkeypatch, caplog):
    """Saving the session happens in SessionMiddleware, after the view: its error never reaches
    process_exception; the 500 handler answers 503 instead, and django.request logs no traceback."""
    from django.contrib.sessions.backends.db import SessionStore

    settings.SESSION_SAVE_EVERY_REQUEST = True
    person = UserFactory(username="root", global_role="admin")
    page = Client(raise_request_exception=False)
    page.force_login(person)
    monkeypatch.setattr(SessionStore, "save", refused)
    with caplog.at_level(logging.INFO):
        response = page.get("/registry/")
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert [(r.levelname, r.name) for r in caplog.records if r.levelno >= logging.WARNING] == [
        ("ERROR", "core.health")
    ]
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (OperationalError("connection failed: Connection refused"), "database"),
        (InterfaceError("connection already closed"), "database"),
        (ValueError("no"), None),
    ],
)
def test_what_counts_as_an_outage(error, dependency):
    assert outage.unavailable_dependency(error) == dependency


def wrapped(driver_error):
    """Django's error for the driver's, as its wrapper raises it."""
    try:
        raise OperationalError(str(driver_error)) from driver_error
    except OperationalError as exc:
        return exc


def test_sqlite_errors_by_message():
    assert outage.unavailable_dependency(wrapped(sqlite3.OperationalError("unable to open database file")))
    # The busy timeout ran out: the request's own failure (a 500), not an outage.
    assert outage.unavailable_dependency(wrapped(sqlite3.OperationalError("database is locked"))) is None


def test_postgresql_errors_by_sqlstate():
    errors = pytest.importorskip("psycopg").errors
    assert outage.unavailable_dependency(wrapped(errors.OperationalError("server closed"))) == "database"
    assert outage.unavailable_dependency(wrapped(errors.AdminShutdown("terminating"))) == "database"
    assert outage.unavailable_dependency(wrapped(errors.CannotConnectNow("starting up"))) == "database"
    # A deadlock or a statement timeout is the request's failure, not an outage: it stays a 500.
    assert outage.unavailable_dependency(wrapped(errors.DeadlockDetected("deadlock"))) is None
    assert outage.unavailable_dependency(wrapped(errors.QueryCanceled("timeout"))) is None


def test_an_unreachable_cache_is_an_outage_of_the_cache():
    from redis.exceptions import ConnectionError as RedisConnectionError

    assert outage.unavailable_dependency(RedisConnectionError("Connection refused")) == "cache"


# The broker, after the commit ----------------------------------------------------------------------------


@pytest.fixture
def broker_down(settings):
    """A broker URL at a loopback port nothing listens on; tasks go through it (not run in-process)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, url
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.broker_url
    conf.task_always_eager, conf.broker_url = False, url
    celery_app._pool = None  # connections are made from the URL above, not from a pool made before
    celery_app.amqp._producer_pool = None
    yield url
    conf.task_always_eager, conf.broker_url = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def callback_url(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    return f"http://127.0.0.1:{free_port()}/hook"  # never called here: the broker is down


@committed
def test_a_decision_with_the_broker_down_answers_the_committed_result(broker_down, callback_url, caplog):
    world = World()
    with caplog.at_level(logging.INFO):
        response = world.request(callback_url=callback_url)
        assert response.status_code == 201, response.content
        promotion_id = response.json()["id"]
        assert world.act(world.r1, promotion_id, "approve").status_code == 200
        started = time.monotonic()
        response = world.act(world.r2, promotion_id, "approve")
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "applied"
    assert PromotionRequest.objects.get(pk=promotion_id).status == "applied"
    pointer = StagePointer.objects.get(asset=world.asset, stage=world.production)
    assert pointer.version_id == world.v2.pk
    assert AuditEvent.objects.filter(action="promotion.applied", target_id=str(promotion_id)).exists()
    message = OutboxMessage.objects.get()
    assert (message.status, message.attempts) == ("pending", 0)  # sweep_outbox will enqueue it
    assert elapsed < 5  # the publish is retried briefly, then given up
    # One warning for the message not enqueued; nothing at ERROR, no traceback.
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.name) for r in warnings] == [("WARNING", "approvals.tasks")], warnings
    assert "not enqueued (the sweep will)" in warnings[0].getMessage()


@committed
def test_a_failing_after_commit_callback_leaves_the_committed_answer_logged_once(
    callback_url, monkeypatch, caplog
):
    world = World()

    def broken(message_id, **kwargs):
        raise RuntimeError("enqueue failed")

    monkeypatch.setattr(tasks, "enqueue", broken)
    ids = [world.request(callback_url=callback_url).json()["id"]]
    with caplog.at_level(logging.INFO):
        response = world.act(world.r1, ids[0], "reject", comment="no")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "rejected"
        # A second one fails the same way: not logged again.
        ids.append(world.request(version=3, callback_url=callback_url).json()["id"])
        assert world.act(world.r1, ids[1], "reject", comment="no").status_code == 200
    assert list(PromotionRequest.objects.filter(pk__in=ids).values_list("status", flat=True)) == [
        "rejected",
        "rejected",
    ]
    assert AuditEvent.objects.filter(action="promotion.rejected").count() == 2
    assert list(OutboxMessage.objects.values_list("status", flat=True)) == ["pending", "pending"]
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.name) for r in records] == [("ERROR", "core.outage")]
    assert records[0].getMessage() == (
        "after commit: outbox enqueue failed (the change is committed): RuntimeError: enqueue failed"
    )


@pytest.mark.django_db
def test_after_commit_runs_later_callbacks_and_logs_the_recovery(django_capture_on_commit_callbacks, caplog):
    ran = []

    def fails():
        raise RuntimeError("broker down")

    with caplog.at_level(logging.INFO):
        with django_capture_on_commit_callbacks(execute=True):
            outage.after_commit(fails, what="work")
            outage.after_commit(lambda: ran.append(1), what="other work")
        with django_capture_on_commit_callbacks(execute=True):
            outage.after_commit(fails, what="work")
        with django_capture_on_commit_callbacks(execute=True):
            outage.after_commit(lambda: ran.append(2), what="work")
    assert ran == [1, 2]
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        ("ERROR", "after commit: work failed"),
        ("INFO", "after commit: work works again"),
    ]


# Readiness: the outbox lag -------------------------------------------------------------------------------


def outbox_message(name: str, due: dt.datetime) -> OutboxMessage:
    return OutboxMessage.objects.create(
        webhook_id=f"msg_{name}",
        event_type="promotion.rejected",
        url="http://127.0.0.1:9/hook",
        payload=b"{}",
        label=name,
        next_attempt_at=due,
    )


@pytest.mark.django_db
def test_readyz_fails_when_the_outbox_lags(client, settings, caplog):
    settings.OUTBOX_LAG_READY_SECONDS = 900
    now = timezone.now()
    outbox_message("fresh", now - dt.timedelta(seconds=60))
    outbox_message("later", now + dt.timedelta(hours=3))  # a retry not yet due
    assert client.get("/readyz").json()["outbox"] == "ok"

    overdue = outbox_message("overdue", now - dt.timedelta(seconds=1000))
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json() == {
                "status": "unavailable",
                "database": "ok",
                "audit_signing": "ok",
                "outbox": "lagging",
            }
        # Delivered (or given up): ready again.
        OutboxMessage.objects.filter(pk=overdue.pk).update(status=OutboxMessage.State.DELIVERED)
        assert client.get("/readyz").status_code == 200
    assert [(r.levelname, r.getMessage().split(" is ")[0]) for r in caplog.records] == [
        ("ERROR", "readiness: outbox unavailable: the oldest pending message"),
        ("INFO", "readiness: outbox available again"),
    ]


@pytest.mark.django_db
def test_the_outbox_check_is_off_at_zero_and_takes_more_outboxes(client, settings, monkeypatch):
    from approvals import health as outbox_health

    outbox_message("overdue", timezone.now() - dt.timedelta(days=1))
    settings.OUTBOX_LAG_READY_SECONDS = 0
    assert "outbox" not in client.get("/readyz").json()

    settings.OUTBOX_LAG_READY_SECONDS = 900
    OutboxMessage.objects.update(status=OutboxMessage.State.FAILED)
    assert client.get("/readyz").json()["outbox"] == "ok"
    # Another outbox (e.g. e-mail) joins the check: its most overdue message counts too.
    monkeypatch.setattr(outbox_health, "_outboxes", list(outbox_health._outboxes))
    outbox_health.add_outbox(lambda: OutboxMessage.objects.filter(status=OutboxMessage.State.FAILED))
    assert client.get("/readyz").json()["outbox"] == "lagging"


@pytest.mark.django_db
def test_the_outbox_check_is_one_query(settings, django_assert_num_queries):
    from approvals.health import check_outbox

    outbox_message("overdue", timezone.now() - dt.timedelta(days=1))
    # The statement timeout (PostgreSQL), the oldest due message; SAVEPOINT and RELEASE.
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 3):
        assert check_outbox() == "lagging"
