#!/usr/bin/env python
"""Throughput and latency of the registry's two hottest API calls, served by gunicorn.

What it measures
    For each backend (PostgreSQL, SQLite) the script builds a fresh database (migrate), creates a bench
    user with a Django session, one model asset with version 1 in `staging`, starts
    `gunicorn config.wsgi -w <workers>` on a free port and drives two workloads over HTTP:

    register  POST /api/v1/models/<name>/versions  {"digest": "sha256:<new>", "metrics": {"auc": 0.9}} -> 201
    resolve   GET  /api/v1/models/<name>/stages/staging                                                 -> 200

    Each workload runs twice: with one client (sequential, `--requests` requests after a warm-up), then
    with `--clients` concurrent clients for `--duration` seconds. Each client is one thread holding one
    http.client.HTTPConnection (reused; it reconnects when the server closes it). The concurrent clients are
    spread over `--client-procs` processes so that one Python GIL does not cap the offered load.
    Requests authenticate like the web UI: cookie `sessionid`, plus the CSRF cookie and X-CSRFToken header.

How to read the tables
    requests  requests measured (warm-up excluded); errors: answers other than 201/200, or socket failures
    ops/s     successful requests per second of wall time, all clients together
    p50, p99  latency of one request as the client sees it (connect + send + wait + read), in ms
    conn/req  new TCP connections per request: 1.00 means the server closed every connection (gunicorn's
              sync worker does: keep-alive needs `--worker-class gthread`), 0.00 means keep-alive held
    targets   the product team's targets, checked for PostgreSQL only (the many-client ones at 16 clients)

    The second table (Linux only) says where the CPU went: milliseconds of CPU per successful request in
    the gunicorn processes, in PostgreSQL (this database's connections and its background writers) and in
    the bench's client, plus the cores that other processes used meanwhile and that the host stole. On a
    2-core machine, ops/s can never exceed 2000 / (the sum of the three) - that is the ceiling to work on.
    A run during which other processes took 0.15 core or more is marked "disturbed": measure again.

    The client runs on the same cores as gunicorn and the database, so the figures are for the whole
    machine. Environment variables such as REDIS_URL pass through to the server. Results are also written
    as JSON to bench/results/registry-<UTC time>.json.

Usage
    make bench                                  # both backends, defaults
    make bench BENCH_ARGS="--backends sqlite --duration 5"
    .venv/bin/python bench/registry.py --help
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also in spawned worker processes
from scratch import BenchError, ScratchDatabase, git_revision, version_of

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
ASSET = "bench-model"
REGISTER_PATH = f"/api/v1/models/{ASSET}/versions"
RESOLVE_PATH = f"/api/v1/models/{ASSET}/stages/staging"
ASSETS_PATH = "/api/v1/models?page_size=50"
PROMOTE_PATH = "/api/v1/promotions"
WORKLOADS = ("register", "resolve", "assets", "promote", "poll")
# method, path (None: taken from the spec), expected status
REQUESTS = {
    "register": ("POST", REGISTER_PATH, 201),
    "resolve": ("GET", RESOLVE_PATH, 200),
    "assets": ("GET", ASSETS_PATH, 200),
    "promote": ("POST", PROMOTE_PATH, 201),
    "poll": ("GET", None, 200),
}
OTHER_ASSETS, VISIBLE_ASSETS = 300, 100  # the asset list: the token's account sees 100 of 301 models

# The product team's targets: PostgreSQL, 2-core machine. "1" is the one-client run, "16" the concurrent one.
TARGETS = {
    ("resolve", 1): [("p50_ms", "<=", 2.5)],
    ("resolve", 16): [("ops_per_s", ">=", 900), ("p99_ms", "<=", 50)],
    ("register", 1): [("p50_ms", "<=", 5)],
    ("register", 16): [("ops_per_s", ">=", 450), ("p99_ms", "<=", 100), ("errors", "<=", 0)],
}
TARGET_BACKEND = "postgres"
DISTURBED_CORES = 0.15  # CPU used by other processes during a run above which its figures are flagged
METRIC_LABEL = {"p50_ms": "p50", "p99_ms": "p99", "ops_per_s": "ops/s", "errors": "errors"}
METRIC_UNIT = {"p50_ms": " ms", "p99_ms": " ms", "ops_per_s": "/s", "errors": ""}

# Run by `manage.py shell`: creates the bench user, a person (not an admin) who may create assets, and a
# logged-in session for it, as a sign-in would; prints the session key.
SESSION_SCRIPT = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import get_user_model, load_backend
from django.contrib.auth.models import Permission
user = get_user_model().objects.create_user("bench", email="bench@example.com")
user.user_permissions.add(Permission.objects.get(content_type__app_label="registry", codename="add_asset"))
backend = next(path for path in settings.AUTHENTICATION_BACKENDS if load_backend(path).get_user(user.pk))
store = import_module(settings.SESSION_ENGINE).SessionStore()
store[SESSION_KEY] = str(user.pk)
store[BACKEND_SESSION_KEY] = backend
store[HASH_SESSION_KEY] = user.get_session_auth_hash()
store.create()
print("BENCH_SESSION=" + store.session_key)
from accounts.services import token_create
from core.source import Source
ci = get_user_model().objects.create_user("bench-ci", is_service_account=True)
scopes = ["read", "write", "promote"]
_, token = token_create(actor=None, source=Source.cli(), account=ci, name="bench", scopes=scopes)
print("BENCH_TOKEN=" + token)
"""


# Load generation (runs in the client processes) ----------------------------------------------------------


def request_body(workload: str) -> bytes | None:
    if workload == "register":
        digest = "sha256:" + secrets.token_hex(32)
        return json.dumps({"digest": digest, "metrics": {"auc": 0.9}}).encode()
    if workload == "promote":
        body = {"kind": "model", "name": ASSET, "version": 1, "stage": "production", "justification": "bench"}
        return json.dumps(body).encode()
    return None


def request_headers(workload: str, headers: dict) -> dict:
    if workload == "promote":  # every request is a new one: a fresh key (a replay would create nothing)
        return {**headers, "Idempotency-Key": secrets.token_hex(16)}
    return headers


def client_thread(spec: dict, count: int | None, ready: threading.Barrier, go: threading.Event, out: list):
    """One client: a warm-up, then `count` requests (or until the deadline) on one reused connection."""
    workload = spec["workload"]
    method, path, expected = REQUESTS[workload]
    path = path or spec["poll_path"]
    conn = http.client.HTTPConnection(HOST, spec["port"], timeout=60)
    stats = {"latencies": [], "errors": Counter(), "failed": 0, "new_connections": 0}

    def one(record: bool) -> None:
        body = request_body(workload)
        if record and conn.sock is None:
            stats["new_connections"] += 1
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=request_headers(workload, spec["headers"]))
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if record:
                stats["failed"] += 1
                stats["errors"][f"{type(exc).__name__}: {exc}"] += 1
            return
        elapsed = time.perf_counter() - start
        if record:
            stats["latencies"].append(elapsed)
            if response.status != expected:
                stats["errors"][f"HTTP {response.status}: {data[:300].decode(errors='replace')}"] += 1

    try:
        for _ in range(spec["warmup"]):
            one(record=False)
    finally:
        ready.wait()  # also when the warm-up failed, so that the process does not hang
    go.wait()
    if count is not None:
        for _ in range(count):
            one(record=True)
    else:
        deadline = time.perf_counter() + spec["duration"]
        while time.perf_counter() < deadline:
            one(record=True)
    conn.close()
    out.append(stats)


def client_process(spec: dict, counts: list, ready_queue, start_event, result_queue) -> None:
    """One client process: len(counts) threads; reports when warmed up, starts on start_event."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    go, out = threading.Event(), []
    ready = threading.Barrier(len(counts) + 1)
    threads = [threading.Thread(target=client_thread, args=(spec, n, ready, go, out)) for n in counts]
    for thread in threads:
        thread.start()
    ready.wait()
    ready_queue.put(os.getpid())
    start_event.wait()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    errors = Counter()
    for stats in out:
        errors.update(stats["errors"])
    result_queue.put(
        {
            "latencies": [value for stats in out for value in stats["latencies"]],
            "errors": dict(errors),
            "failed": sum(stats["failed"] for stats in out),
            "new_connections": sum(stats["new_connections"] for stats in out),
            "elapsed": elapsed,
        }
    )


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def run_load(spec: dict, clients: int, procs: int, requests: int | None, owner_of=None) -> dict:
    """Run `clients` clients over `procs` processes; `requests` in total, or for spec['duration'] s.

    owner_of(pid, pgid, cmdline) names the part of the bench a process belongs to, for the CPU accounting.
    """
    ctx = multiprocessing.get_context("spawn")
    ready_queue, result_queue, start_event = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = max(1, min(procs, clients))
    threads_per_proc = split(clients, procs)
    per_thread = split(requests, clients) if requests is not None else [None] * clients
    workers, offset = [], 0
    for n_threads in threads_per_proc:
        counts = per_thread[offset : offset + n_threads]
        offset += n_threads
        worker = ctx.Process(
            target=client_process, args=(spec, counts, ready_queue, start_event, result_queue), daemon=True
        )
        worker.start()
        workers.append(worker)
    client_pids = {worker.pid for worker in workers}

    def owner(pid: int, pgid: int, cmdline: str) -> str | None:
        if pid in client_pids:
            return "client"
        return owner_of(pid, pgid, cmdline) if owner_of else None

    try:
        for _ in workers:
            receive(ready_queue, workers, timeout=300)
        meter = CpuMeter()
        start_event.set()
        parts = [receive(result_queue, workers, timeout=spec["duration"] + 600) for _ in workers]
        before, after = meter.stop()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    result = summarise(parts)
    result["cpu"] = cpu_usage(before, after, owner, result["ok"])
    return result


def receive(queue, workers: list, timeout: float):
    """The next message from the client processes; fails early when one of them died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Empty):
            return queue.get(timeout=0.5)
        dead = [worker.exitcode for worker in workers if worker.exitcode not in (None, 0)]
        if dead:
            raise BenchError(f"a client process died (exit code {dead[0]})")
    raise BenchError(f"the client processes did not answer within {timeout:.0f} s")


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summarise(parts: list[dict]) -> dict:
    latencies = sorted(value for part in parts for value in part["latencies"])
    errors = Counter()
    for part in parts:
        errors.update(part["errors"])
    elapsed = max(part["elapsed"] for part in parts)
    total = len(latencies) + sum(part["failed"] for part in parts)
    ok = total - sum(errors.values())
    connections = sum(part["new_connections"] for part in parts)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "requests": total,
        "ok": ok,
        "errors": total - ok,
        "error_samples": dict(errors.most_common(10)),
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "mean_ms": ms(sum(latencies) / len(latencies)) if latencies else None,
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1]) if latencies else None,
        "conn_per_request": round(connections / total, 2) if total else 0.0,
    }


# CPU accounting (Linux /proc; skipped elsewhere) ----------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> dict | None:
    """CPU seconds used so far by the whole machine and by every process, or None without /proc.

    Processes are keyed by (pid, start time), so that a reused pid is not mistaken for its predecessor.
    """
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    processes = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        processes[int(entry.name), fields[19]] = (int(fields[2]), command, seconds)  # 19: start time
    busy = sum(ticks[:3]) / CLOCK_TICKS  # user + nice + system
    steal = (ticks[7] if len(ticks) > 7 else 0) / CLOCK_TICKS
    return {"at": time.perf_counter(), "busy": busy, "steal": steal, "processes": processes}


class CpuMeter:
    """Snapshots at start and stop, and a sample every second in between: a process that ends during the
    run (Django recycles its database connection every CONN_MAX_AGE seconds) keeps its last reading."""

    def __init__(self):
        self.before = cpu_snapshot()
        self.seen = dict(self.before["processes"]) if self.before else {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        if self.before:
            self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(1.0):
            self.seen.update(cpu_snapshot()["processes"])

    def stop(self) -> tuple[dict | None, dict | None]:
        self.done.set()
        if not self.before:
            return None, None
        self.thread.join()
        after = cpu_snapshot()
        after["processes"] = {**self.seen, **after["processes"]}
        return self.before, after


def cpu_usage(before: dict | None, after: dict | None, owner, ok: int) -> dict:
    """Where the CPU went during a run: ms per successful request for each part of the bench, and the
    cores used by everything else on the machine (other work disturbs the figures) and stolen by the host."""
    if before is None or after is None:
        return {}
    wall = after["at"] - before["at"]
    spent: Counter = Counter()
    for key, (pgid, command, seconds) in after["processes"].items():
        part = owner(key[0], pgid, command)
        if part:
            previous = before["processes"].get(key)
            spent[part] += seconds - (previous[2] if previous else 0)
    others = max(0.0, after["busy"] - before["busy"] - sum(spent.values()))
    per_request = {part: round(seconds / ok * 1000, 3) if ok else None for part, seconds in spent.items()}
    usage = {"ms_per_request": per_request}
    usage["other_cores"] = round(others / wall, 2)
    usage["steal_cores"] = round((after["steal"] - before["steal"]) / wall, 2)
    return usage


# Server setup ------------------------------------------------------------------------------------------


def django_env(database_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="false",
        DJANGO_SECURE_COOKIES="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
        AUDIT_SIGNING_KEY_AUTOCREATE="true",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)[:60]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def call(port: int, headers: dict, method: str, path: str, payload: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def expect(port: int, headers: dict, method: str, path: str, payload: dict | None, status: int) -> None:
    got, body = call(port, headers, method, path, payload)
    if got != status:
        raise BenchError(f"{method} {path} answered {got}, expected {status}: {body[:500]}")


class Gunicorn:
    """gunicorn config.wsgi in its own process group; stop() ends the master and its workers."""

    def __init__(self, env: dict, args: argparse.Namespace, log_path: Path):
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"{HOST}:{self.port}",
            "--worker-class",
            args.worker_class,
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        self.log_path = log_path
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if call(self.port, {}, "GET", "/healthz")[0] == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"gunicorn did not answer /healthz within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log.close()


def prepare(env: dict, port: int, auth: str) -> tuple[dict, str]:
    """Set up what the workloads need; return the request headers and the path of the request to poll.

    A person (session) creates the asset, version 1 in staging, a production policy, 300 more models, and
    grants the CI service account contribute and request_promotion on the asset and view on 100 models. The
    workloads then run as that service account with its bearer token (--auth token, the default) or as the
    person with the session (--auth session).
    """
    output = manage(env, "shell", "-c", SESSION_SCRIPT)
    found = dict(
        line.split("=", 1)
        for line in output.splitlines()
        if line.startswith(("BENCH_SESSION=", "BENCH_TOKEN="))
    )
    if "BENCH_SESSION" not in found or "BENCH_TOKEN" not in found:
        raise BenchError(f"the setup script printed no session key or token:\n{output}")
    csrf = secrets.token_hex(16)  # 32 alphanumeric characters: a CSRF secret Django accepts as is
    person = {
        "Cookie": f"sessionid={found['BENCH_SESSION'].strip()}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    token = {
        "Authorization": f"Bearer {found['BENCH_TOKEN'].strip()}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    expect(port, person, "POST", "/api/v1/models", {"name": ASSET, "description": "bench"}, 201)
    first = {"digest": "sha256:" + hashlib.sha256(b"bench").hexdigest(), "metrics": {"auc": 0.9}}
    expect(port, person, "POST", REGISTER_PATH, first, 201)
    expect(port, person, "PUT", RESOLVE_PATH, {"version": 1}, 200)
    grants = f"/api/v1/models/{ASSET}/permissions"
    for role in ("contribute", "request_promotion"):
        expect(
            port,
            person,
            "POST",
            grants,
            {"principal_type": "user", "principal": "bench-ci", "role": role},
            201,
        )
    policy = {"kind": "model", "name": ASSET, "stage": "production", "required_approvals": 2}
    expect(port, person, "POST", "/api/v1/policies", policy, 201)
    for index in range(OTHER_ASSETS):
        name = f"other-{index:04d}"
        expect(port, person, "POST", "/api/v1/models", {"name": name}, 201)
        if index < VISIBLE_ASSETS - 1:
            grant = {"principal_type": "user", "principal": "bench-ci", "role": "view"}
            expect(port, person, "POST", f"/api/v1/models/{name}/permissions", grant, 201)
    headers = token if auth == "token" else person
    expect(port, headers, "GET", RESOLVE_PATH, None, 200)
    body = {"kind": "model", "name": ASSET, "version": 1, "stage": "production", "justification": "poll me"}
    status, text = call(port, {**token, "Idempotency-Key": "bench-poll"}, "POST", PROMOTE_PATH, body)
    if status != 201:
        raise BenchError(f"could not create the promotion to poll: HTTP {status} {text[:300]}")
    return headers, json.loads(text)["url"]


# Reporting -----------------------------------------------------------------------------------------------


def checks_for(backend: str, workload: str, clients: int, result: dict) -> list[dict]:
    if backend != TARGET_BACKEND:
        return []
    out = []
    for metric, op, target in TARGETS.get((workload, clients), []):
        measured = result[metric]
        passed = measured is not None and (measured <= target if op == "<=" else measured >= target)
        out.append({"metric": metric, "op": op, "target": target, "measured": measured, "pass": passed})
    return out


def describe(check: dict) -> str:
    op = "≤" if check["op"] == "<=" else "≥"
    target = f"{check['target']:g}"
    verdict = "pass" if check["pass"] else "MISS"
    return f"{METRIC_LABEL[check['metric']]} {op} {target}{METRIC_UNIT[check['metric']]} {verdict}"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'backend':<9} {'workload':<9} {'clients':>7} {'requests':>8} {'errors':>6} {'ops/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'conn/req':>8}  targets (PostgreSQL)"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        targets = ", ".join(describe(check) for check in row["checks"]) or "-"
        print(
            f"{row['backend']:<9} {row['workload']:<9} {row['clients']:>7} {row['requests']:>8} "
            f"{row['errors']:>6} {row['ops_per_s']:>8.1f} {number(row['p50_ms']):>7} "
            f"{number(row['p99_ms']):>7} {row['conn_per_request']:>8.2f}  {targets}"
        )
    for row in rows:
        for message, count in row["error_samples"].items():
            print(f"  error in {row['backend']}/{row['workload']}/{row['clients']}: {count} x {message}")
    checks = [check for row in rows for check in row["checks"]]
    if checks:
        missed = sum(not check["pass"] for check in checks)
        print(
            f"\nTargets: {len(checks) - missed} of {len(checks)} met"
            + (f", {missed} missed" if missed else "")
        )
    print_cpu_table(rows)


def print_cpu_table(rows: list[dict]) -> None:
    if not any(row["cpu"] for row in rows):
        return
    header = (
        f"{'backend':<9} {'workload':<9} {'clients':>7} {'gunicorn':>9} {'database':>9} {'client':>7}"
        f" {'other cores':>12} {'steal':>6}"
    )
    print("\nCPU per request in ms, by part of the bench; cores used by other processes meanwhile\n" + header)
    print("-" * len(header))
    disturbed = False
    for row in rows:
        cpu = row["cpu"]
        flag = cpu["other_cores"] >= DISTURBED_CORES or cpu["steal_cores"] >= DISTURBED_CORES
        disturbed |= flag
        ms = cpu["ms_per_request"]
        print(
            f"{row['backend']:<9} {row['workload']:<9} {row['clients']:>7} {number(ms.get('gunicorn')):>9}"
            f" {number(ms.get('database')):>9} {number(ms.get('client')):>7} {cpu['other_cores']:>12.2f}"
            f" {cpu['steal_cores']:>6.2f}" + ("  <- disturbed" if flag else "")
        )
    if disturbed:
        print(
            f"Other processes (or the host) took {DISTURBED_CORES:g}+ cores during the runs marked:"
            " their figures understate the app. Run again on a quiet machine."
        )


# Main ----------------------------------------------------------------------------------------------------


def bench_backend(backend: str, args: argparse.Namespace, stack: contextlib.ExitStack, meta: dict) -> list:
    print(f"\n== {backend}: migrate, create the bench user, session and asset, start gunicorn")
    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"registry-bench-{backend}-")))
    if backend == "postgres":
        database = ScratchDatabase(args.pg_url)
        url = database.create()
        stack.callback(database.drop)
        meta["postgres_version"] = database.server_version
    else:
        url = f"sqlite:///{scratch / 'bench.db'}"
    env = django_env(url)
    manage(env, "migrate", "--noinput")
    server = Gunicorn(env, args, scratch / "gunicorn.log")
    stack.callback(server.stop)
    server.wait_healthy()
    headers, poll_path = prepare(env, server.port, args.auth)
    print(f"   gunicorn on port {server.port}, {args.workers} {args.worker_class} workers")
    database_name = f" {database.name} " if backend == "postgres" else None

    def owner_of(pid: int, pgid: int, command: str) -> str | None:
        if pgid == server.process.pid:
            return "gunicorn"
        if database_name and command.startswith("postgres: "):
            # our connections ("postgres: user registry_bench 127.0.0.1(port) idle") and the shared
            # background processes (walwriter, checkpointer ... : no client address)
            return "database" if database_name in command or "(" not in command else None
        return "client" if pid == os.getpid() else None

    rows = []
    for workload in WORKLOADS:
        spec = {
            "workload": workload,
            "port": server.port,
            "headers": headers,
            "duration": args.duration,
            "poll_path": poll_path,
        }
        runs = [(1, 1, args.requests, args.warmup)]
        concurrent_requests = None if args.duration > 0 else args.requests
        clients = args.promotion_clients if workload in ("promote", "poll") else args.clients
        runs.append((clients, args.client_procs, concurrent_requests, max(1, args.warmup // clients)))
        for clients, procs, requests, warmup in runs:
            what = f"{requests} requests" if requests is not None else f"{args.duration:g} s"
            print(f"   {workload:<9} {clients:>2} client(s), {what} ...", end="", flush=True)
            result = run_load({**spec, "warmup": warmup}, clients, procs, requests, owner_of)
            row = {"backend": backend, "workload": workload, "clients": clients, "client_procs": procs}
            row.update(result)
            row["checks"] = checks_for(backend, workload, clients, row)
            print(f" {row['ops_per_s']:.0f}/s, p50 {number(row['p50_ms'])} ms, errors {row['errors']}")
            rows.append(row)
    if server.process.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{server.log_tail()}")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgres,sqlite", help="comma-separated: postgres, sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/registry_bench"),
        help="the bench database; DROPPED and created again on every run (its name must contain 'bench')",
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests of the one-client runs")
    parser.add_argument(
        "--duration", type=float, default=10, help="seconds of each concurrent run (0: --requests)"
    )
    parser.add_argument("--clients", type=int, default=16, help="clients of the concurrent runs")
    parser.add_argument(
        "--promotion-clients", type=int, default=20, help="clients of the concurrent promote and poll runs"
    )
    parser.add_argument(
        "--auth",
        choices=["token", "session"],
        default="token",
        help="how the workloads authenticate: the CI service account's bearer token, or a person's session",
    )
    parser.add_argument("--client-procs", type=int, default=2, help="processes the concurrent clients run in")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests before each run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument("--threads", type=int, default=0, help="gunicorn threads per worker (gthread)")
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(args.backends) - {"postgres", "sqlite"}
    if unknown or not args.backends:
        parser.error(
            f"--backends takes postgres and/or sqlite, not {', '.join(sorted(unknown)) or 'nothing'}"
        )
    if args.requests < 1 or args.clients < 1 or args.workers < 1 or args.duration < 0:
        parser.error("--requests, --clients and --workers must be at least 1, --duration at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` should clean up like Ctrl-C does: stop gunicorn, drop the database, remove temp files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = dt.datetime.now(dt.UTC)
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "django": version_of("django"),
        "gunicorn": version_of("gunicorn"),
        "sqlite": sqlite3.sqlite_version,
        "args": {key: value for key, value in vars(args).items() if key != "pg_url"},
    }
    rows = []
    try:
        for backend in args.backends:
            with contextlib.ExitStack() as stack:
                rows += bench_backend(backend, args, stack, meta)
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; gunicorn stopped and the bench database dropped", file=sys.stderr)
        return 130
    print_table(rows)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"registry-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    targets = [
        {"workload": w, "clients": c, "metric": m, "op": op, "target": t}
        for (w, c), items in TARGETS.items()
        for m, op, t in items
    ]
    path.write_text(json.dumps({"meta": meta, "targets": targets, "results": rows}, indent=2) + "\n")
    print(f"Results written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
