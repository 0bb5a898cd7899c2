"""The production run: `make serve` starts the Procfile's gunicorn, Celery worker and beat with honcho against
PostgreSQL and Redis, and answers /healthz, /readyz and /metrics; it refuses clearly without its settings.

The end-to-end test makes its own database on the PostgreSQL server at 127.0.0.1:5432 (SERVE_TEST_POSTGRES_URL
to name another) and starts its own redis-server on a free loopback port; skipped when either is missing.
"""

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from audit import signing
from tests.stack import free_port, scratch_database, scratch_redis  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 150


def make_serve(env: dict, **kwargs) -> subprocess.Popen:
    # -o: the virtualenv counts as installed (the run must not reinstall packages).
    return subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "serve"],
        cwd=ROOT,
        env=env,
        **kwargs,
    )


def test_the_procfile_names_commands_that_exist():
    processes = dict(
        line.split(": ", 1)
        for line in (ROOT / "Procfile").read_text().splitlines()
        if re.match(r"^\w+: ", line)
    )
    assert set(processes) == {"web", "worker", "beat"}
    for command in processes.values():
        assert (ROOT / ".venv" / "bin" / command.split()[0]).exists(), command
    assert "config/gunicorn.py" in processes["web"]
    assert (ROOT / "config" / "gunicorn.py").exists()


def test_make_serve_names_what_is_missing(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = make_serve(env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = done.communicate(timeout=60)
    assert done.returncode != 0
    assert (
        "make serve: set DATABASE_URL CELERY_BROKER_URL DJANGO_SECRET_KEY(_FILE) AUDIT_WITNESS_DIR" in stderr
    )


def get(url: str, **headers) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_make_serve_runs_web_worker_and_beat(tmp_path, scratch_database, scratch_redis):  # noqa: F811
    key = tmp_path / "audit-signing-key.pem"
    signing.generate_key_file(key)
    port, token = free_port(), secrets.token_urlsafe(32)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": scratch_database,
        "CELERY_BROKER_URL": scratch_redis,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_SIGNING_KEY_FILE": str(key),
        "AUDIT_WITNESS_DIR": str(tmp_path / "witness"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "METRICS_TOKEN": token,
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "celerybeat-schedule"),
        "WEB_CONCURRENCY": "2",
        "CELERY_WORKER_CONCURRENCY": "1",
    }
    output = tmp_path / "serve.log"
    with output.open("w") as log:
        run = make_serve(env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and run.poll() is None:
            try:
                if get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"no /healthz within {STARTUP_SECONDS} s:\n{output.read_text()[-4000:]}")
        status, body = get(base + "/readyz")
        assert (status, json.loads(body)) == (
            200,
            {"status": "ok", "database": "ok", "broker": "ok", "audit_signing": "ok", "outbox": "ok"},
        )
        # The worker and beat are up too (their start-up lines).
        while time.monotonic() < deadline and not all(
            marker in output.read_text() for marker in ("ready.", "beat: Starting")
        ):
            time.sleep(0.5)
        text = output.read_text()
        assert "ready." in text and "beat: Starting" in text, text[-4000:]
        # The metrics add up the gunicorn workers' samples (multiprocess mode).
        assert get(base + "/metrics")[0] == 404
        status, metrics = get(base + "/metrics", Authorization=f"Bearer {token}")
        assert status == 200
        assert re.search(
            r'registry_http_responses_total\{route="healthz",status_class="2xx"\} [1-9]', metrics
        )
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=10)
