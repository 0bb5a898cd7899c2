#!/usr/bin/env python
"""Throughput and latency of the API calls that CI and serving make most often, served by gunicorn.

For each backend (PostgreSQL, SQLite): a fresh database, a person who creates the asset, its version 1 in
staging, a production policy and 300 more models, a CI service account with grants; then `gunicorn
config.wsgi` on a free loopback port and seven workloads over HTTP (two through the MLflow API), each with
one client and with many.
bench/README.md says how to read the tables. Results go to bench/results/registry-<UTC time>.json.

    .venv/bin/python bench/registry.py --backends sqlite --requests 200 --duration 2    # quick
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also in spawned client processes
import common
from common import HOST, BenchError, call, number

ASSET = "bench-model"
REGISTER_PATH = f"/api/v1/models/{ASSET}/versions"
RESOLVE_PATH = f"/api/v1/models/{ASSET}/stages/staging"
PROMOTE_PATH = "/api/v1/promotions"
MLFLOW = "/mlflow/api/2.0/mlflow"
MLFLOW_REGISTER_PATH = f"{MLFLOW}/model-versions/create"
MLFLOW_RESOLVE_PATH = f"{MLFLOW}/registered-models/alias?name={ASSET}&alias=staging"
REQUESTS = {  # method, path (None: the promotion to poll), expected status
    "register": ("POST", REGISTER_PATH, 201),
    "mlregister": ("POST", MLFLOW_REGISTER_PATH, 200),
    "resolve": ("GET", RESOLVE_PATH, 200),
    "mlresolve": ("GET", MLFLOW_RESOLVE_PATH, 200),
    "assets": ("GET", "/api/v1/models?page_size=50", 200),
    "promote": ("POST", PROMOTE_PATH, 201),
    "poll": ("GET", None, 200),
}
# The MLflow API's calls next to the registry's own: create_model_version and get_model_version_by_alias.
MLFLOW_PAIRS = {"mlregister": "register", "mlresolve": "resolve"}
OTHER_ASSETS, VISIBLE_ASSETS = 300, 100  # the asset list: the token's account sees 100 of 301 models
# The product team's targets: PostgreSQL, 2-core machine. "1" is the one-client run, "16" the concurrent one.
TARGETS = {
    ("resolve", 1): [("p50_ms", "<=", 2.5)],
    ("resolve", 16): [("ops_per_s", ">=", 900), ("p99_ms", "<=", 50)],
    ("register", 1): [("p50_ms", "<=", 5)],
    ("register", 16): [("ops_per_s", ">=", 450), ("p99_ms", "<=", 100), ("errors", "<=", 0)],
}
LABELS = {"p50_ms": ("p50", " ms"), "p99_ms": ("p99", " ms"), "ops_per_s": ("ops/s", "/s")}
LABELS["errors"] = ("errors", "")

# Run by `manage.py shell`: the bench person (not an admin; may create assets) with a logged-in session, as
# a sign-in would make it, and the CI service account with a token; prints the session key and the token.
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


# Run by `manage.py shell` against the bench database once the setup is done: each workload's request twice
# through Django's test client with the workload's headers (BENCH_HEADERS; the requests in BENCH_COUNT), the
# second one counted. Django logs a transaction's BEGIN and COMMIT with the statements, so on PostgreSQL
# every statement counted is one round trip. Prints one JSON line.
COUNT_SCRIPT = """
import json, os, secrets
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
headers = json.loads(os.environ["BENCH_HEADERS"])
meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k.lower() != "content-type"}
client = Client(**meta)
out = {}
for workload, (method, path, body) in json.loads(os.environ["BENCH_COUNT"]).items():
    for attempt in range(2):
        extra = {"HTTP_IDEMPOTENCY_KEY": secrets.token_hex(16)}
        if workload == "register":
            body = {"digest": "sha256:" + secrets.token_hex(32), "metrics": {"auc": 0.9}}
        with CaptureQueriesContext(connection) as captured:
            if method == "GET":
                response = client.get(path, **extra)
            else:
                response = client.post(path, body, content_type="application/json", **extra)
    statements = len(captured.captured_queries)
    out[workload] = {"status": response.status_code, "statements": statements,
                     "sql": [" ".join(query["sql"].split())[:100] for query in captured.captured_queries]}
print("BENCH_COUNT=" + json.dumps(out))
"""


# Load generation (in the client processes) ---------------------------------------------------------------


def request(workload: str, headers: dict) -> tuple[bytes | None, dict]:
    """A request's body and headers: a new digest to register, a new Idempotency-Key to promote."""
    if workload == "register":
        return json.dumps(
            {"digest": "sha256:" + secrets.token_hex(32), "metrics": {"auc": 0.9}}
        ).encode(), headers
    if workload == "mlregister":  # what MlflowClient.create_model_version sends, with a digest tag
        digest = "sha256:" + secrets.token_hex(32)
        body = {"name": ASSET, "source": "s3://bench/model", "tags": [{"key": "digest", "value": digest}]}
        return json.dumps(body).encode(), headers
    if workload == "promote":  # a replay would create nothing: a fresh key each time
        body = {"kind": "model", "name": ASSET, "version": 1, "stage": "production", "justification": "bench"}
        return json.dumps(body).encode(), {**headers, "Idempotency-Key": secrets.token_hex(16)}
    return None, headers


def client_thread(spec: dict, count: int | None, context, ready, go) -> dict:
    """One client: a warm-up, then `count` requests (or until the deadline) on one reused connection."""
    method, path, expected = REQUESTS[spec["workload"]]
    path = path or spec["poll_path"]
    conn = http.client.HTTPConnection(HOST, spec["port"], timeout=60)
    stats = {"latencies": [], "errors": Counter(), "failed": 0, "new_connections": 0}

    def one(record: bool) -> None:
        body, headers = request(spec["workload"], spec["headers"])
        stats["new_connections"] += record and conn.sock is None
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if record:
                stats["failed"] += 1
                stats["errors"][f"{type(exc).__name__}: {exc}"] += 1
            return
        if record:
            stats["latencies"].append(time.perf_counter() - start)
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
    deadline = time.perf_counter() + spec["duration"]
    while count is None and time.perf_counter() < deadline:
        one(record=True)
    conn.close()
    return stats


def run_load(spec: dict, clients: int, procs: int, requests: int | None, owner) -> dict:
    """`clients` clients over `procs` processes; `requests` in total, or for spec['duration'] seconds."""
    per_thread = common.split(requests, clients) if requests is not None else [None] * clients
    groups, offset = [], 0
    for size in common.split(clients, max(1, min(procs, clients))):
        groups, offset = [*groups, per_thread[offset : offset + size]], offset + size
    parts, elapsed, usage = common.run_clients(client_thread, groups, spec, spec["duration"] + 600, owner)
    latencies = sorted(value for part in parts for value in part["latencies"])
    errors = common.merge_errors(parts)
    total = len(latencies) + sum(part["failed"] for part in parts)
    ok = total - sum(errors.values())
    connections = sum(part["new_connections"] for part in parts)
    result = {
        "requests": total,
        "ok": ok,
        "errors": total - ok,
        "error_samples": dict(errors.most_common(10)),
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        **common.latency_summary(latencies, 50, 90, 99),
        "conn_per_request": round(connections / total, 2) if total else 0.0,
    }
    result["cpu"] = usage and {
        "ms_per_request": {p: round(s / ok * 1000, 3) if ok else None for p, s in usage["seconds"].items()},
        "other_cores": round(usage["other"] / usage["wall"], 2),
        "steal_cores": round(usage["steal"] / usage["wall"], 2),
    }
    return result


# Setup -----------------------------------------------------------------------------------------------------


def expect(port: int, headers: dict, method: str, path: str, payload: dict | None, status: int) -> str:
    got, body = call(port, headers, method, path, payload)
    if got != status:
        raise BenchError(f"{method} {path} answered {got}, expected {status}: {body[:500]}")
    return body


def prepare(env: dict, port: int, auth: str) -> tuple[dict, str]:
    """What the workloads need: the request headers (--auth: the CI account's token or the person's session
    with its CSRF cookie and header) and the path of a promotion request to poll."""
    output = common.manage(env, "shell", "-c", SESSION_SCRIPT)
    found = dict(line.split("=", 1) for line in output.splitlines() if line.startswith("BENCH_"))
    if "BENCH_SESSION" not in found or "BENCH_TOKEN" not in found:
        raise BenchError(f"the setup script printed no session key or token:\n{output}")
    csrf = secrets.token_hex(16)  # 32 alphanumeric characters: a CSRF secret Django accepts as is
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    person = {"Cookie": f"sessionid={found['BENCH_SESSION'].strip()}; csrftoken={csrf}", "X-CSRFToken": csrf}
    person |= json_headers
    token = {"Authorization": f"Bearer {found['BENCH_TOKEN'].strip()}", **json_headers}
    expect(port, person, "POST", "/api/v1/models", {"name": ASSET, "description": "bench"}, 201)
    first = {"digest": "sha256:" + hashlib.sha256(b"bench").hexdigest(), "metrics": {"auc": 0.9}}
    expect(port, person, "POST", REGISTER_PATH, first, 201)
    expect(port, person, "PUT", RESOLVE_PATH, {"version": 1}, 200)
    for role in ("contribute", "request_promotion"):
        grant = {"principal_type": "user", "principal": "bench-ci", "role": role}
        expect(port, person, "POST", f"/api/v1/models/{ASSET}/permissions", grant, 201)
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
    text = expect(port, {**token, "Idempotency-Key": "bench-poll"}, "POST", PROMOTE_PATH, body, 201)
    return headers, json.loads(text)["url"]


# Reporting -------------------------------------------------------------------------------------------------


def checks_for(backend: str, workload: str, clients: int, result: dict) -> list[dict]:
    out = []
    for metric, op, target in TARGETS.get((workload, clients), []) if backend == "postgres" else []:
        measured = result[metric]
        passed = measured is not None and (measured <= target if op == "<=" else measured >= target)
        out.append({"metric": metric, "op": op, "target": target, "measured": measured, "pass": passed})
    return out


def describe(check: dict) -> str:
    label, unit = LABELS[check["metric"]]
    op = "≤" if check["op"] == "<=" else "≥"
    return f"{label} {op} {check['target']:g}{unit} {'pass' if check['pass'] else 'MISS'}"


def mlflow_ratios(rows: list[dict]) -> list[dict]:
    """Each MLflow workload's throughput next to its native counterpart's, same backend and clients."""
    by_key = {(row["backend"], row["workload"], row["clients"]): row for row in rows}
    ratios = []
    for row in rows:
        native = by_key.get((row["backend"], MLFLOW_PAIRS.get(row["workload"]), row["clients"]))
        if native is None or not row["ops_per_s"]:
            continue
        server_ms = [(r.get("cpu") or {}).get("ms_per_request", {}).get("gunicorn") for r in (row, native)]
        ratios.append(
            {
                "backend": row["backend"],
                "workload": row["workload"],
                "clients": row["clients"],
                "mlflow_ops_per_s": row["ops_per_s"],
                "native_ops_per_s": native["ops_per_s"],
                "ratio": native["ops_per_s"] / row["ops_per_s"],
                # Server CPU per request: what a busy machine disturbs least.
                "mlflow_server_cpu_ms": server_ms[0],
                "native_server_cpu_ms": server_ms[1],
                "cpu_ratio": server_ms[0] / server_ms[1] if all(server_ms) else None,
            }
        )
    return ratios


def statement_counts(env: dict, headers: dict, poll_path: str) -> dict:
    """Statements and round trips of one request of each workload (COUNT_SCRIPT)."""
    requests = {}
    for workload, (method, path, _) in REQUESTS.items():
        body, _ = request(workload, {})
        requests[workload] = (method, path or poll_path, json.loads(body) if body else None)
    extra = {"BENCH_HEADERS": json.dumps(headers), "BENCH_COUNT": json.dumps(requests)}
    output = common.manage({**env, **extra}, "shell", "-c", COUNT_SCRIPT)
    found = [line for line in output.splitlines() if line.startswith("BENCH_COUNT=")]
    if not found:
        raise BenchError(f"the statement count printed nothing:\n{output}")
    return json.loads(found[0].split("=", 1)[1])


def print_ceiling(rows: list[dict], counts: dict, verbose: bool = False) -> None:
    """The registry against the ceiling app (bench/ceiling) in the same run: ratios of ops/s and of p50."""
    by_key = {(r["backend"], r.get("server", "registry"), r["workload"], r["clients"]): r for r in rows}
    lines = []
    for (backend, server, workload, clients), ceiling in by_key.items():
        registry = by_key.get((backend, "registry", workload, clients))
        if server != "ceiling" or registry is None:
            continue
        ops = registry["ops_per_s"] / ceiling["ops_per_s"] if ceiling["ops_per_s"] else None
        p50 = registry["p50_ms"] / ceiling["p50_ms"] if registry["p50_ms"] and ceiling["p50_ms"] else None
        cpu = [(row["cpu"] or {}).get("ms_per_request", {}).get("gunicorn") for row in (registry, ceiling)]
        lines.append(
            f"{backend:<9} {workload:<9} {clients:>7} {registry['ops_per_s']:>9.1f}"
            f" {ceiling['ops_per_s']:>9.1f} {number(ops):>6} {number(registry['p50_ms']):>7}"
            f" {number(ceiling['p50_ms']):>7} {number(p50):>6} {number(cpu[0]):>8} {number(cpu[1]):>8}"
        )
    if lines:
        header = (
            f"{'backend':<9} {'workload':<9} {'clients':>7} {'registry':>9} {'ceiling':>9} {'ratio':>6}"
            f" {'p50 ms':>7} {'ceil ms':>7} {'p50 x':>6} {'cpu ms':>8} {'ceil cpu':>8}"
        )
        print(
            "\nAgainst the ceiling (bench/ceiling, same run): ops/s and its ratio, p50 and its multiple,"
            " gunicorn CPU ms per request"
        )
        print(header + "\n" + "-" * len(header) + "\n" + "\n".join(lines))
    for backend, per_workload in counts.items():
        print(f"\nStatements per request ({backend}; BEGIN and COMMIT included, each a round trip):")
        for workload, count in per_workload.items():
            print(f"  {workload:<9} {count['statements']} statements (HTTP {count['status']})")
            for sql in count["sql"] if verbose else []:
                print(f"      {sql}")


def print_tables(rows: list[dict]) -> None:
    header = (
        f"{'backend':<9} {'workload':<10} {'clients':>7} {'requests':>8} {'errors':>6} {'ops/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'conn/req':>8}  targets (PostgreSQL)"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(
            f"{row['backend']:<9} {row['workload']:<10} {row['clients']:>7} {row['requests']:>8} "
            f"{row['errors']:>6} {row['ops_per_s']:>8.1f} {number(row['p50_ms']):>7} "
            f"{number(row['p99_ms']):>7} {row['conn_per_request']:>8.2f}  "
            + (", ".join(describe(check) for check in row["checks"]) or "-")
        )
    for row in rows:
        for message, count in row["error_samples"].items():
            print(f"  error in {row['backend']}/{row['workload']}/{row['clients']}: {count} x {message}")
    ratios = mlflow_ratios(rows)
    if ratios:
        print("\nThe MLflow API next to the registry's own routes (native ops/s / MLflow ops/s)")
        for ratio in ratios:
            print(
                f"  {ratio['backend']:<9} {ratio['workload']:<11} {ratio['clients']:>2} client(s): "
                f"{ratio['mlflow_ops_per_s']:.0f}/s vs {ratio['native_ops_per_s']:.0f}/s, "
                f"{ratio['ratio']:.2f}x ({'within' if ratio['ratio'] <= 1.3 else 'over'} 1.3x)"
                + (
                    f"; server CPU {ratio['mlflow_server_cpu_ms']:.2f} vs "
                    f"{ratio['native_server_cpu_ms']:.2f} ms/request, {ratio['cpu_ratio']:.2f}x"
                    if ratio["cpu_ratio"]
                    else ""
                )
            )
    checks = [check for row in rows for check in row["checks"]]
    if checks:
        missed = sum(not check["pass"] for check in checks)
        print(
            f"\nTargets: {len(checks) - missed} of {len(checks)} met"
            + (f", {missed} missed" if missed else "")
        )
    rows = [row for row in rows if row["cpu"]]
    if rows:
        print("\nCPU per request in ms, by part of the bench; cores used by other processes meanwhile")
        lines, flags = [], []
        for row in rows:
            cpu, ms = row["cpu"], row["cpu"]["ms_per_request"]
            flags.append(max(cpu["other_cores"], cpu["steal_cores"]) >= common.DISTURBED_CORES)
            lines.append(
                f"{row['backend']:<9} {row['workload']:<10} {row['clients']:>7}"
                f" {number(ms.get('gunicorn')):>9} {number(ms.get('database')):>9}"
                f" {number(ms.get('client')):>7} {cpu['other_cores']:>12.2f}"
                f" {cpu['steal_cores']:>6.2f}"
            )
        header = (
            f"{'backend':<9} {'workload':<10} {'clients':>7} {'gunicorn':>9} {'database':>9} {'client':>7}"
        )
        common.table(header + f" {'other cores':>12} {'steal':>6}", lines, flags, "runs")


# Main ------------------------------------------------------------------------------------------------------


def bench_backend(
    backend: str, args: argparse.Namespace, stack: contextlib.ExitStack, meta: dict, counts: dict
) -> list:
    print(f"\n== {backend}: migrate, create the bench user, session and asset, start gunicorn")
    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"registry-bench-{backend}-")))
    url, database = f"sqlite:///{scratch / 'bench.db'}", None
    if backend == "postgres":
        database = common.ScratchDatabase(args.pg_url)
        url = database.create()
        stack.callback(database.drop)
        meta["postgres_version"] = database.server_version
    env = common.django_env(url)
    common.manage(env, "migrate", "--noinput")
    options = ["-w", str(args.workers), "--worker-class", args.worker_class]
    server = common.Gunicorn(
        env, scratch / "gunicorn.log", *options, *(["--threads", str(args.threads)] * bool(args.threads))
    )
    stack.callback(server.stop)
    server.wait_healthy()
    headers, poll_path = prepare(env, server.port, args.auth)
    print(f"   gunicorn on port {server.port}, {args.workers} {args.worker_class} workers")
    in_database = common.postgres_owner(database.name) if database else lambda *_: None

    def owner(pid: int, pgid: int, command: str) -> str | None:
        if pgid == server.process.pid:
            return "gunicorn"
        return "client" if pid == os.getpid() else in_database(pid, pgid, command)

    counts[backend] = statement_counts(env, headers, poll_path) if args.auth == "token" else {}
    rows = []

    def workloads(names, port: int, server_name: str) -> None:
        for workload in names:
            spec = {"workload": workload, "port": port, "headers": headers, "duration": args.duration}
            spec["poll_path"] = poll_path
            clients = args.promotion_clients if workload in ("promote", "poll") else args.clients
            runs = [(1, 1, args.requests, args.warmup)]
            concurrent_requests = args.requests if args.duration <= 0 else None
            runs.append((clients, args.client_procs, concurrent_requests, max(1, args.warmup // clients)))
            for clients, procs, requests, warmup in runs:
                what = f"{requests} requests" if requests is not None else f"{args.duration:g} s"
                print(
                    f"   {server_name:<8} {workload:<9} {clients:>2} client(s), {what} ...",
                    end="",
                    flush=True,
                )
                row = {"backend": backend, "workload": workload, "clients": clients, "client_procs": procs}
                row["server"] = server_name
                row.update(run_load({**spec, "warmup": warmup}, clients, procs, requests, owner))
                row["checks"] = (
                    checks_for(backend, workload, clients, row) if server_name == "registry" else []
                )
                print(f" {row['ops_per_s']:.0f}/s, p50 {number(row['p50_ms'])} ms, errors {row['errors']}")
                rows.append(row)

    workloads(args.workloads, server.port, "registry")
    if server.process.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{server.log_tail()}")
    if args.auth == "token" and args.ceiling:
        server.stop()
        # The ceiling: the same workers on the same database, doing only the queries (bench/ceiling).
        ceiling_env = {**env, "DJANGO_SETTINGS_MODULE": "ceiling.settings"}
        ceiling = common.Gunicorn(
            ceiling_env,
            scratch / "ceiling.log",
            *options,
            "--pythonpath",
            str(Path(__file__).resolve().parent),
            *(["--threads", str(args.threads)] * bool(args.threads)),
            app="ceiling.wsgi",
        )
        stack.callback(ceiling.stop)
        ceiling.wait_healthy()

        def owner(pid: int, pgid: int, command: str) -> str | None:  # the ceiling's workers
            if pgid == ceiling.process.pid:
                return "gunicorn"
            return "client" if pid == os.getpid() else in_database(pid, pgid, command)

        workloads([w for w in ("register", "resolve") if w in args.workloads], ceiling.port, "ceiling")
        if ceiling.process.poll() is not None:
            raise BenchError(f"the ceiling's gunicorn died during the run:\n{ceiling.log_tail()}")
    return rows


OPTIONS = """
--backends           postgres,sqlite  comma-separated: postgres, sqlite
--workloads          all              comma-separated workloads (e.g. register,mlregister,resolve,mlresolve)
--requests           2000             requests of the one-client runs
--duration           10.0             seconds of each concurrent run (0: --requests)
--clients            16               clients of the concurrent runs
--promotion-clients  20               clients of the concurrent promote and poll runs
--auth               token|session    the CI account's bearer token or a person's session
--client-procs       2                processes the concurrent clients run in
--warmup             100              unmeasured requests before each run
--workers            2                gunicorn worker processes
--worker-class       sync             gunicorn worker class (sync, gthread)
--threads            0                gunicorn threads per worker (gthread)
--no-ceiling         -                skip the ceiling app's runs (bench/ceiling)
--statements         -                print each request's statements (first 100 characters)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, OPTIONS, ("BENCH_PG_URL", "registry_bench"))
    args = parser.parse_args(argv)
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = ", ".join(sorted(set(args.backends) - {"postgres", "sqlite"}))
    if unknown or not args.backends:
        parser.error(f"--backends takes postgres and/or sqlite, not {unknown or 'nothing'}")
    names = [name.strip() for name in args.workloads.split(",") if name.strip()]
    args.workloads = list(REQUESTS) if args.workloads == "all" else names
    unknown = ", ".join(sorted(set(args.workloads) - set(REQUESTS)))
    if unknown or not args.workloads:
        parser.error(f"--workloads takes {', '.join(REQUESTS)}, not {unknown or 'nothing'}")
    if args.requests < 1 or args.clients < 1 or args.workers < 1 or args.duration < 0:
        parser.error("--requests, --clients and --workers must be at least 1, --duration at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    meta = common.meta(started, args, "django", "gunicorn") | {"sqlite": sqlite3.sqlite_version}
    rows, counts = [], {}

    def run() -> int:
        for backend in args.backends:
            with contextlib.ExitStack() as stack:
                rows.extend(bench_backend(backend, args, stack, meta, counts))
        return 0

    if code := common.run_main(run):
        return code
    print_tables([row for row in rows if row["server"] == "registry"])
    print_ceiling(rows, counts, args.statements)
    targets = [
        {"workload": w, "clients": c, "metric": m, "op": op, "target": t}
        for (w, c), items in TARGETS.items()
        for m, op, t in items
    ]
    results = {
        "meta": meta,
        "targets": targets,
        "results": rows,
        "statements": counts,
        "mlflow_ratios": mlflow_ratios([row for row in rows if row["server"] == "registry"]),
    }
    common.write_results("registry", started, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
