"""A real stack for end-to-end tests and benchmarks: a scratch PostgreSQL database, a redis-server of its own
on a free loopback port, and the production processes (gunicorn, a Celery worker, beat) as subprocesses that
a test starts, kills and restarts one by one. Used by tests/test_serve.py, tests/test_faults.py and
bench/deliveries.py.

The processes run with the production settings (config.settings.base) and the environment of `make serve`;
callbacks may go to 127.0.0.1 (the receivers of tests.helpers.Receiver), and the outbox's retries and sweep
are shortened (DJANGO_OUTBOX_FIRST_RETRY_SECONDS, DJANGO_OUTBOX_SWEEP_SECONDS).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
POSTGRES_URL = os.environ.get("SERVE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what, interval: float = 0.1):
    """condition()'s first true value within timeout seconds; else AssertionError naming what did not happen
    (what, or what() when it is callable)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        time.sleep(interval)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# The scratch database and Redis ---------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database_url(name: str, admin_url: str = POSTGRES_URL):
    """A new PostgreSQL database called name (+ REGISTRY_TEST_DB_SUFFIX), dropped afterwards; the test is
    skipped when no server answers."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {admin_url}: {exc}")
    name += os.environ.get("REGISTRY_TEST_DB_SUFFIX", "")
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class RedisServer:
    """A redis-server on 127.0.0.1 at a port of its own (no other suite's tasks in its queues), without
    persistence: stopped and started again, it comes back empty on the same port, as after losing its data."""

    def __init__(self, workdir: Path):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.workdir, self.port = workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: listening(self.port), 10, f"redis-server listening on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def scratch_database():
    with scratch_database_url("registry_serve") as url:
        yield url


@pytest.fixture
def scratch_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server.url
    server.stop()


# The processes ---------------------------------------------------------------------------------------------


def http(method: str, url: str, body: dict | None = None, token: str | None = None, timeout: float = 30):
    """(status, decoded JSON or text) of one request."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if method == "POST":
        headers["Idempotency-Key"] = secrets.token_hex(8)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Stack:
    """gunicorn, one Celery worker and beat on a scratch database and Redis, each a process group of its own
    with its log under workdir; start() them, kill_worker() (SIGKILL, as the OOM killer or a lost node would),
    and stop() everything."""

    def __init__(self, workdir: Path, database_url: str, redis: RedisServer, **extra_env: str):
        from audit import signing

        self.workdir, self.redis = workdir, redis
        key = workdir / "audit-signing-key.pem"
        signing.generate_key_file(key)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.webhook_secret = secrets.token_hex(32)
        self.env = {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "HOME": str(workdir),
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": redis.url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_WEBHOOK_SECRET": self.webhook_secret,
            "AUDIT_SIGNING_KEY_FILE": str(key),
            "AUDIT_WITNESS_DIR": str(workdir / "witness"),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_OUTBOX_SWEEP_SECONDS": "2",
            "DJANGO_OUTBOX_FIRST_RETRY_SECONDS": "1",
            "PORT": str(self.port),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
            "WEB_CONCURRENCY": "2",
            **extra_env,
        }
        (workdir / "prometheus").mkdir(exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    # Setting up

    def python(self, code: str, timeout: float = 120) -> str:
        """Run code in a Django process on the stack's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"setup failed:\n{done.stderr[-4000:]}")
        return done.stdout

    def setup(self, assets: int) -> None:
        """Migrate the database and run build_world(assets) in it: self.world, the names and tokens."""
        code = (
            "import json\nfrom django.core.management import call_command\nimport tests.stack as s\n"
            f"call_command('migrate', verbosity=0)\nprint(json.dumps(s.build_world({assets})))"
        )
        self.world = json.loads(self.python(code))

    # Processes

    def _start(self, name: str, *command: str) -> None:
        self.logs[name] = self.workdir / f"{name}.log"
        with self.logs[name].open("a") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, name: str) -> str:
        return self.logs[name].read_text() if name in self.logs else ""

    def _wait_started(self, name: str, condition) -> None:
        process = self.processes[name]
        wait_for(
            lambda: condition() or process.poll() is not None,
            90,
            lambda: f"{name} started:\n{self.log(name)[-3000:]}",
        )
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")

    def _launch_web(self):
        self._start("web", str(BIN / "gunicorn"), "--config", "config/gunicorn.py", "config.wsgi")
        return lambda: self._wait_started("web", self._healthy)

    def _healthy(self) -> bool:
        try:
            return http("GET", self.base + "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def _launch_worker(self):
        """One Celery worker process (prefork, concurrency 1), as the Procfile starts it."""
        starts = self.log("worker").count(" ready.")
        command = ("--app", "config", "worker", "--loglevel", "INFO", "--concurrency", "1")
        self._start("worker", str(BIN / "celery"), *command)
        return lambda: self._wait_started("worker", lambda: self.log("worker").count(" ready.") > starts)

    def _launch_beat(self):
        schedule = self.workdir / "celerybeat-schedule"
        command = ("--app", "config", "beat", "--loglevel", "INFO", "-s", str(schedule))
        self._start("beat", str(BIN / "celery"), *command)
        return lambda: self._wait_started("beat", lambda: "beat: Starting" in self.log("beat"))

    def start_worker(self) -> None:
        self._launch_worker()()

    def start(self, assets: int) -> None:
        """setup(assets), then gunicorn, the worker and beat, started together; returns once all are up."""
        self.setup(assets)
        for wait in [self._launch_web(), self._launch_worker(), self._launch_beat()]:
            wait()

    def kill_worker(self) -> None:
        """SIGKILL the worker's process group: the main process and its pool child die at once, mid-task."""
        self._signal("worker", signal.SIGKILL)

    def _signal(self, name: str, signum: int, timeout: float = 30) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # A pool child that outlived its parent (it should not) is killed too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM to every process group at once, then SIGKILL to those still there after 5 s (a test stack
        needs no graceful shutdown)."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for name in list(self.processes):
            self._signal(name, signal.SIGTERM, timeout=max(0.1, deadline - time.monotonic()))

    @property
    def worker_running(self) -> bool:
        process = self.processes.get("worker")
        return process is not None and process.poll() is None

    # Using it

    def api(self, method: str, path: str, token: str, body: dict | None = None):
        return http(method, self.base + "/api/v1/" + path.lstrip("/"), body, token)

    def query(self, sql: str, *params):
        """Rows of one SQL statement on the stack's database (for what the API does not show)."""
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


def build_world(assets: int) -> dict:
    """Run inside a Django process on a migrated scratch database: models fraud-0 … fraud-{assets-1}, each
    with v1 in production and v2, a production policy of 2 approvals from team reviewers (r1, r2); the CI
    service account ci may request promotions; admin is a registry admin. Returns their tokens."""
    from guardian.shortcuts import assign_perm

    from accounts.models import GlobalRole, Scope
    from accounts.services import token_create
    from core.source import Channel, Credential, CredentialKind, Source
    from registry.models import AssetKind, Stage, StagePointer
    from tests.factories import (
        AssetFactory,
        PolicyFactory,
        ServiceAccountFactory,
        TeamFactory,
        UserFactory,
        VersionFactory,
    )

    production = Stage.objects.get(name="production")
    reviewers = TeamFactory(name="reviewers")
    ci = ServiceAccountFactory(username="ci")
    people = [UserFactory(username=name) for name in ("r1", "r2")]
    for person in people:
        person.groups.add(reviewers)
    admin = UserFactory(username="admin", global_role=GlobalRole.ADMIN)
    names = []
    for index in range(assets):
        asset = AssetFactory(kind=AssetKind.MODEL, name=f"fraud-{index}")
        v1 = VersionFactory(asset=asset, metrics={"auc": 0.90})
        VersionFactory(asset=asset, metrics={"auc": 0.93})
        StagePointer.objects.create(
            asset=asset, stage=production, version=v1, updated_at="2026-01-01T00:00:00Z"
        )
        assign_perm("registry.request_promotion_asset", ci, asset)
        assign_perm("registry.review_asset", reviewers, asset)
        policy = PolicyFactory(asset=asset, stage=production, required_approvals=2)
        policy.reviewer_teams.set([reviewers])
        names.append(asset.name)

    def token(account, scopes, actor=None, source=None):
        return token_create(
            actor=actor, source=source or Source.cli(), account=account, name="stack", scopes=scopes
        )[1]

    session = Source(channel=Channel.WEB, credential=Credential(kind=CredentialKind.SESSION))
    return {
        "assets": names,
        "ci": token(ci, [Scope.READ, Scope.WRITE, Scope.PROMOTE]),
        "reviewers": [token(p, [Scope.READ, Scope.REVIEW], actor=p, source=session) for p in people],
        "admin": token(admin, [Scope.READ, Scope.WRITE, Scope.PROMOTE, Scope.MANAGE]),
    }
