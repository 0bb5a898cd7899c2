#!/usr/bin/env python
"""What the audit log costs: append throughput under concurrency, export and verification of 1M events.

What it measures (PostgreSQL only, on a scratch database that is created and dropped by the script)
    1. Writers: `registry.services.version_register` called in a loop by `--writers` threads for
       `--seconds` seconds, each thread on its own asset (so the asset's row lock does not serialise them)
       and with its own database connection, spread over `--procs` processes. Once as is ("audited") and
       once with `audit_record` replaced in `registry.services` by a function that does nothing
       ("un-audited"): the business writes are identical, the difference is the audit append and its lock
       on the single AuditHead row. The same pair runs with 1 writer. After the audited runs the log must
       be gapless (seq 1..N, N = audited calls) and `verify_log(record=False)` must pass. A diagnostic run
       (audited, `SET synchronous_commit = off` in the writers' sessions) shows what the commit's WAL flush
       under the head lock costs.
    2. Export: the log is filled to `--events // 10`, then to `--events` events with a bulk loader that
       builds a valid chain in Python (audit.canonical) and inserts with COPY; a checkpoint is signed; then
       `manage.py audit_export --format jsonl|bundle` runs as a subprocess at both sizes: wall time,
       events/s, output size, peak RSS of the subprocess (VmHWM), and the temporary files PostgreSQL wrote.
    3. Verification: `manage.py audit_verify` (database) and `audit/verify_bundle.py` (the bundle) at both
       sizes, against the raw SHA-256 rate of this machine on 400-byte and 65-byte messages (a verifier
       needs about 3 hashes per event: leaf, chain, Merkle node), with a breakdown of where a verifier's
       time per event goes.

How to read the tables
    calls/s   completed service calls per second of wall time, all writers together
    p50, p99  latency of one version_register call (transaction included), ms
    business  mean ms per call until audit_record is entered
    wait      mean ms from there until the head row's SELECT ... FOR UPDATE returns (the lock is granted)
    held      mean ms from then to the end of the commit: the head lock's hold time as the client sees it
    commit    mean ms from audit_record's return to the end of the commit
    1/held    appends per second if the head lock were all that counted
    cores     CPU used during the measured seconds by the writer processes (Python, Django, psycopg) or the
              subprocess, by PostgreSQL (this database's backends and the server's background writers),
              and by every other process on the machine; runs where others took 0.15 core or more are
              "disturbed": their figures are too low

Usage
    .venv/bin/python bench/audit.py                          # everything, 1,000,000 events (~4 minutes)
    .venv/bin/python bench/audit.py --events 100000 --seconds 5
    .venv/bin/python bench/audit.py --help

Results are also written as JSON to bench/results/audit-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import random
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also in spawned worker processes
from scratch import BenchError, ScratchDatabase, git_revision, version_of

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# Run as a script, bench/ comes first on sys.path, and this file (audit.py) and registry.py would shadow
# the Django apps of the same names: put the project root there instead (spawned workers inherit it).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

RESULTS_DIR = BENCH_DIR / "results"
BENCH_USER = "audit-bench"
USER_AGENT = "registry-cli/1.4.2 python-requests/2.32.3 (bench)"
RATIO_TARGET = 0.7  # product target: audited / un-audited calls per second with 16 writers
DISTURBED_CORES = 0.15
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024
PHASES = ("latencies", "business", "wait", "held", "commit")  # per call, see writer_thread


def django_setup() -> None:
    import django

    django.setup()


# 1. Writers (run in spawned worker processes) -----------------------------------------------------------


def version_data(asset_name: str, call: int) -> dict:
    """What a CI job registers: a new digest every time, an artifact URI, two metrics and a tag."""
    return {
        "digest": "sha256:" + os.urandom(32).hex(),
        "uri": f"s3://models/{asset_name}/{call}/model.tar.gz",
        "metrics": {"auc": 0.91, "f1": 0.87},
        "tags": ["bench"],
    }


def writer_thread(spec: dict, asset_id: int, marks, ready: threading.Barrier, go: threading.Event, out: list):
    """One writer: its own connection (Django's are per thread), a warm-up, then calls until the deadline.

    Phases of each call: `business` until audit_record is entered; `wait` until the head row's
    SELECT ... FOR UPDATE returns (the lock is granted); `held` from then to the end of the commit (the lock
    is released at commit); `commit` from audit_record's return to the end of the commit. The connection
    stays open until the process exits: its backend's CPU is sampled after the run."""
    from django.db import connection

    from accounts.models import User
    from core.source import Channel, Source
    from registry import services
    from registry.models import Asset

    stats = {key: [] for key in PHASES} | {"completed": 0, "errors": Counter()}

    def spot_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and '"audit_audithead"' in sql:
            marks.locked = time.perf_counter()
        return result

    def one(record: bool) -> None:
        source = Source(
            channel=Channel.API, request_id=uuid.uuid4().hex, ip="10.20.30.40", user_agent=USER_AGENT
        )
        data = version_data(asset.name, stats["completed"])
        marks.locked = None
        started = time.perf_counter()
        try:
            services.version_register(actor=user, source=source, asset=asset, data=data)
        except Exception as exc:
            stats["errors"][f"{type(exc).__name__}: {str(exc)[:200]}"] += 1
            return
        ended = time.perf_counter()
        stats["completed"] += 1
        if record:
            stats["latencies"].append(ended - started)
            stats["business"].append(marks.entered - started)
            stats["commit"].append(ended - marks.left)
            if marks.locked is not None:
                stats["wait"].append(marks.locked - marks.entered)
                stats["held"].append(ended - marks.locked)

    with connection.execute_wrapper(spot_lock):
        try:
            user = User.objects.get(username=BENCH_USER)
            asset = Asset.objects.get(pk=asset_id)
            for _ in range(spec["warmup"]):
                one(record=False)
        except Exception as exc:
            stats["errors"][f"setup failed: {type(exc).__name__}: {exc}"] += 1
            out.append(stats)
            ready.wait()
            return
        ready.wait()
        go.wait()
        stats["warmup_completed"] = stats["completed"]
        deadline = time.perf_counter() + spec["seconds"]
        while time.perf_counter() < deadline:
            one(record=True)
    out.append(stats)


def writer_process(spec: dict, asset_ids: list, ready_queue, start_event, result_queue, exit_event) -> None:
    """One process of writers: len(asset_ids) threads; reports when warmed up, starts on start_event."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    django_setup()
    from django.db.backends.signals import connection_created

    from registry import services

    marks = threading.local()
    real = services.audit_record

    if spec["audited"]:

        def audit_record(**kwargs):
            marks.entered = time.perf_counter()
            event = real(**kwargs)
            marks.left = time.perf_counter()
            return event

    else:

        def audit_record(**kwargs):  # the no-op: the business writes stay identical
            marks.entered = marks.left = time.perf_counter()

    services.audit_record = audit_record
    if spec.get("synchronous_commit_off"):

        def relax(sender, connection, **kwargs):
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")

        connection_created.connect(relax, weak=False)

    go, out = threading.Event(), []
    ready = threading.Barrier(len(asset_ids) + 1)
    threads = [
        threading.Thread(target=writer_thread, args=(spec, asset_id, marks, ready, go, out))
        for asset_id in asset_ids
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    ready_queue.put(os.getpid())
    start_event.wait()
    cpu, started = time.process_time(), time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    errors = Counter()
    for stats in out:
        errors.update(stats["errors"])
    merged = {key: [v for stats in out for v in stats[key]] for key in PHASES}
    result_queue.put(
        {
            **merged,
            "completed": sum(stats["completed"] for stats in out),
            "warmup_completed": sum(stats.get("warmup_completed", 0) for stats in out),
            "errors": dict(errors),
            "elapsed": elapsed,
            "cpu": cpu,
        }
    )
    exit_event.wait(120)


# CPU accounting (Linux /proc) ---------------------------------------------------------------------------


def _proc_cpu(pid: str) -> tuple[float, str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, fields[19]  # utime + stime, start time


def cpu_sample(database: str, pid: int | None = None) -> dict | None:
    """Machine busy time, the CPU time of this database's PostgreSQL processes (and the shared writers),
    and that of process `pid` if given."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    busy = (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # all but idle and iowait
    postgres = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if not command.startswith("postgres: "):
            continue
        # our backends ("postgres: postgres audit_bench 127.0.0.1(port) idle") and the shared background
        # processes (walwriter, checkpointer, ...: no client address), not other databases' workers
        ours = f" {database} " in command or ("(" not in command and "worker" not in command)
        usage = _proc_cpu(entry.name) if ours else None
        if usage:
            postgres[entry.name] = usage
    own = _proc_cpu(str(pid)) if pid else None
    return {"at": time.perf_counter(), "busy": busy, "postgres": postgres, "pid_cpu": own[0] if own else 0.0}


def cpu_usage(before: dict | None, after: dict | None, client_cpu: float) -> dict:
    if not before or not after:
        return {}
    wall = after["at"] - before["at"]
    database = 0.0
    for pid, (seconds, started) in after["postgres"].items():
        previous = before["postgres"].get(pid)
        database += seconds - (previous[0] if previous and previous[1] == started else 0)
    other = max(0.0, after["busy"] - before["busy"] - database - client_cpu)
    return {
        "client_cores": round(client_cpu / wall, 2),
        "database_cores": round(database / wall, 2),
        "other_cores": round(other / wall, 2),
    }


# 1. Writers (driven from the main process) ---------------------------------------------------------------


def split(items: list, parts: int) -> list[list]:
    return [items[index::parts] for index in range(parts)]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def mean_ms(values: list[float]) -> float | None:
    return round(sum(values) / len(values) * 1000, 3) if values else None


def run_writers(spec: dict, asset_ids: list[int], procs: int, database: str) -> dict:
    """Run one writer per asset over `procs` processes for spec['seconds']; returns the merged figures."""
    ctx = multiprocessing.get_context("spawn")
    ready_queue, result_queue = ctx.Queue(), ctx.Queue()
    start_event, exit_event = ctx.Event(), ctx.Event()
    groups = [group for group in split(asset_ids, max(1, min(procs, len(asset_ids)))) if group]
    workers = [
        ctx.Process(
            target=writer_process,
            args=(spec, group, ready_queue, start_event, result_queue, exit_event),
            daemon=True,
        )
        for group in groups
    ]
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            _wait_queue(ready_queue, workers, 180, "warm up")
        before = cpu_sample(database)
        start_event.set()
        results = [_wait_queue(result_queue, workers, spec["seconds"] + 120, "finish") for _ in workers]
        after = cpu_sample(database)
    except BaseException:  # Ctrl-C, kill or a failed worker: stop the others now
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        raise
    finally:
        exit_event.set()
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
    latencies = [v for r in results for v in r["latencies"]]
    wall = max(r["elapsed"] for r in results)
    errors = Counter()
    for r in results:
        errors.update(r["errors"])
    return {
        "writers": len(asset_ids),
        "procs": len(groups),
        "calls": len(latencies),
        "calls_total": sum(r["completed"] for r in results),  # warm-up included
        "errors": sum(errors.values()),
        "error_samples": dict(errors.most_common(5)),
        "seconds": round(wall, 2),
        "calls_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        **{f"{key}_ms": mean_ms([v for r in results for v in r[key]]) for key in PHASES[1:]},
        "cpu": cpu_usage(before, after, sum(r["cpu"] for r in results)),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _wait_queue(queue, workers, timeout: float, what: str):
    from queue import Empty

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=1)
        except Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise BenchError(
                    f"a writer process exited with {dead[0].exitcode} before it could {what}"
                ) from None
    raise BenchError(f"the writer processes did not {what} within {timeout:.0f} s")


def setup_writers(count: int) -> list[int]:
    """The bench user (a person who may create assets) and one model asset per writer, created without
    audit events so that the audited runs alone fill the log: after them, seq 1..N and N = audited calls."""
    from django.contrib.auth.models import Permission

    from accounts.models import User
    from core.source import Source
    from registry import services
    from registry.models import AssetKind

    user = User.objects.create_user(BENCH_USER, email="audit-bench@example.com")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="registry", codename="add_asset")
    )
    user = User.objects.get(pk=user.pk)  # no cached permissions
    real, services.audit_record = services.audit_record, lambda **kwargs: None
    try:
        assets = [
            services.asset_create(
                actor=user, source=Source.cli(), kind=AssetKind.MODEL, name=f"bench-writer-{index:02d}"
            )
            for index in range(count)
        ]
    finally:
        services.audit_record = real
    return [asset.pk for asset in assets]


def check_log(expected: int) -> dict:
    """The log after the audited runs: seq 1..N without a gap, N = the audited calls; then verify_log.

    Also counts the events whose occurred_at is earlier than their predecessor's (docs/audit-log.md: "time
    order follows seq order"), and the largest such step back."""
    from django.db import connection
    from django.db.models import Count, Max, Min

    from audit.models import AuditEvent, AuditHead
    from audit.verification import verify_log

    figures = AuditEvent.objects.aggregate(count=Count("id"), low=Min("seq"), high=Max("seq"))
    head = AuditHead.objects.get(pk=1).seq
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(max(extract(epoch FROM back) * 1000), 0) FROM ("
            " SELECT lag(occurred_at) OVER (ORDER BY seq) - occurred_at AS back FROM audit_auditevent"
            ") steps WHERE back > interval '0'"
        )
        inversions, worst_ms = cursor.fetchone()
    gapless = figures["count"] == figures["high"] == head == expected and figures["low"] in (1, None)
    started = time.perf_counter()
    result = verify_log(record=False)
    seconds = time.perf_counter() - started
    return {
        "expected": expected,
        "count": figures["count"],
        "min_seq": figures["low"],
        "max_seq": figures["high"],
        "head_seq": head,
        "gapless": gapless,
        "verify_ok": result.ok,
        "verify_events": result.events,
        "verify_problem": result.problem,
        "verify_seconds": round(seconds, 3),
        "time_inversions": inversions,
        "worst_inversion_ms": round(float(worst_ms), 3),
    }


def bench_writers(args: argparse.Namespace, database: str) -> dict:
    print(f"\n== 1. writers: version_register for {args.seconds:g} s per run, audited and not")
    asset_ids = setup_writers(args.writers)
    runs = [
        ("un-audited", args.writers, args.procs, {"audited": False}),
        ("audited", args.writers, args.procs, {"audited": True}),
        ("un-audited", 1, 1, {"audited": False}),
        ("audited", 1, 1, {"audited": True}),
    ]
    if args.diagnostic:
        label = "audited, sync commit off"
        runs.append((label, args.writers, args.procs, {"audited": True, "synchronous_commit_off": True}))
    rows, checks, audited_calls = [], [], 0
    for label, writers, procs, extra in runs:
        warmup = max(1, args.warmup // writers)
        spec = {"seconds": args.seconds, "warmup": warmup, **extra}
        print(f"   {label:<25} {writers:>2} writer(s) in {procs} process(es) ...", end="", flush=True)
        row = {"run": label, **extra, **run_writers(spec, asset_ids[:writers], procs, database)}
        print(f" {row['calls_per_s']:.0f} calls/s, p50 {row['p50_ms']} ms, errors {row['errors']}")
        rows.append(row)
        if extra["audited"]:
            audited_calls += row["calls_total"]
            check = {"after": f"{label}, {writers} writer(s)", **check_log(audited_calls)}
            checks.append(check)
            print(
                f"   log check: {check['count']} events, seq {check['min_seq']}..{check['max_seq']}, head "
                f"{check['head_seq']}, expected {expected_text(check)}; verify_log "
                f"{'ok' if check['verify_ok'] else 'FAILED: ' + check['verify_problem']}"
            )
    ratios = []
    for writers in (args.writers, 1):
        plain = next(r for r in rows if r["run"] == "un-audited" and r["writers"] == writers)
        audited = next(r for r in rows if r["run"] == "audited" and r["writers"] == writers)
        ratio = audited["calls_per_s"] / plain["calls_per_s"] if plain["calls_per_s"] else None
        target = RATIO_TARGET if writers == args.writers else None
        ratios.append(
            {
                "writers": writers,
                "audited_per_s": audited["calls_per_s"],
                "unaudited_per_s": plain["calls_per_s"],
                "ratio": round(ratio, 3) if ratio is not None else None,
                "target": target,
                "pass": None if target is None or ratio is None else ratio >= target,
            }
        )
    return {"runs": rows, "ratios": ratios, "log_checks": checks}


def expected_text(check: dict) -> str:
    return f"{check['expected']} ({'gapless' if check['gapless'] else 'GAP OR MISMATCH'})"


# 2. Bulk fill ---------------------------------------------------------------------------------------------

MODEL_NAMES = [
    f"{area}-{kind}"
    for area in ("fraud", "churn", "ranking", "ocr", "pricing", "support", "credit", "search")
    for kind in ("classifier", "detector", "scorer")
]
DATASET_NAMES = ["transactions", "customers", "clicks", "invoices", "tickets"]
PEOPLE = [(10 + index, name) for index, name in enumerate(["alice", "bob", "chen", "dana", "eve", "farid"])]
PEOPLE += [(40 + index, f"ml-engineer-{index:02d}") for index in range(24)]
SERVICE_ACCOUNTS = [(90, "ci-fraud"), (91, "ci-ranking"), (92, "ci-pricing")]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
    "registry-cli/1.4.2",
    "registry-action/1.2.0",
]
ACTIONS = [  # (action, weight): roughly what a registry that CI feeds records
    ("version.created", 25),
    ("evaluation.added", 15),
    ("stage.set", 12),
    ("login.succeeded", 22),
    ("asset.updated", 8),
    ("promotion.approved", 6),
    ("grant.added", 4),
    ("token.created", 3),
    ("login.failed", 5),
]


class EventFactory:
    """Synthetic events shaped like the ones the services record, ~400 bytes of canonical body each."""

    def __init__(self, seed: int = 1) -> None:
        self.rnd = random.Random(seed)
        self.actions = [action for action, weight in ACTIONS for _ in range(weight)]

    def hex(self, bits: int) -> str:
        return f"{self.rnd.getrandbits(bits):0{bits // 4}x}"

    def make(self, seq: int, occurred: str) -> tuple[dict, dict]:
        """The body (a dict, canonicalised by the caller) and the projection columns."""
        rnd = self.rnd
        action = rnd.choice(self.actions)
        service = action in ("version.created", "evaluation.added") and rnd.random() < 0.6
        actor_id, name = rnd.choice(SERVICE_ACCOUNTS if service else PEOPLE)
        kind = "service_account" if service else "user"
        asset_index = rnd.randrange(len(MODEL_NAMES))
        asset_id, asset = 100 + asset_index, f"model/{MODEL_NAMES[asset_index]}"
        number = rnd.randint(1, 400)
        context = {"request_id": self.hex(128), "ip": f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.7"}
        context["user_agent"] = AGENTS[2] if service else rnd.choice(AGENTS[:2])
        source = "api" if service or context["user_agent"] == AGENTS[1] else "web"
        if action == "version.created":
            target = ("registry.assetversion", str(rnd.randint(1, 10**6)), f"{asset}@{number}")
            changes = {
                "after": {
                    "number": number,
                    "digest": "sha256:" + self.hex(256),
                    "uri": f"s3://models/{MODEL_NAMES[asset_index]}/{number}",
                    "metrics": {"auc": f"0.{rnd.randint(800, 999)}"},
                    "source": {},
                    "lineage": [],
                }
            }
        elif action == "evaluation.added":
            target = ("registry.evaluation", str(rnd.randint(1, 10**6)), f"holdout of {asset}@{number}")
            changes = {
                "after": {
                    "version": f"{asset}@{number}",
                    "name": "holdout",
                    "metrics": {"auc": f"0.{rnd.randint(800, 999)}"},
                    "dataset": f"dataset/{rnd.choice(DATASET_NAMES)}@{rnd.randint(1, 50)}",
                }
            }
        elif action == "stage.set":
            target = ("registry.stagepointer", str(rnd.randint(1, 5000)), f"{asset}:staging")
            changes = {
                "stage": "staging",
                "before": {"version": number - 1},
                "after": {"version": number},
                "reason": "retrained",
                "promotion": None,
            }
        elif action == "asset.updated":
            target = ("registry.asset", str(asset_id), asset)
            changes = {"before": {"risk_tier": "medium"}, "after": {"risk_tier": "high"}}
        elif action == "promotion.approved":
            target = (
                "approvals.promotionrequest",
                str(rnd.randint(1, 10**5)),
                f"{asset}@{number} to production",
            )
            changes = {"review": {"decision": "approve", "comment": "ok"}}
        elif action == "grant.added":
            target = ("registry.asset", str(asset_id), asset)
            changes = {"principal": f"user:{rnd.choice(PEOPLE)[1]}", "role": "contribute"}
        elif action == "token.created":
            target = ("accounts.apitoken", str(rnd.randint(1, 10**4)), f"token {self.hex(16)}")
            asset_id, changes = (
                None,
                {"scopes": ["read", "write"], "expires_at": "2027-01-31T00:00:00.000000Z"},
            )
        elif action == "login.succeeded":
            target, asset_id, changes = ("accounts.user", str(actor_id), name), None, {}
        else:  # login.failed: no actor, the target is the username that was tried
            actor_id, kind, target, asset_id = None, "system", ("accounts.user", "", name), None
            changes = {"username": name, "reason": "wrong password"}
        actor_name = "system" if actor_id is None else name
        body = {
            "v": 1,
            "seq": seq,
            "occurred_at": occurred,
            "actor": {"kind": kind, "id": actor_id, "name": actor_name},
            "action": action,
            "target": {"kind": target[0], "id": target[1], "repr": target[2]},
            "asset_id": asset_id,
            "changes": changes,
            "source": source,
            "context": context,
        }
        columns = {
            "actor_id": actor_id,
            "actor_repr": actor_name,
            "actor_kind": kind,
            "action": action,
            "target_kind": target[0],
            "target_id": target[1],
            "target_repr": target[2],
            "asset_id": asset_id,
            "changes": changes,
            "source": source,
            "context": context,
        }
        return body, columns


COPY_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_repr",
    "actor_kind",
    "action",
    "target_kind",
    "target_id",
    "target_repr",
    "asset_id",
    "changes",
    "source",
    "context",
    "body",
    "leaf_hash",
    "chain_hash",
)


def fill_log(url: str, target: int, factory: EventFactory, batch: int = 100_000) -> dict:
    """Append events up to seq `target`, continuing the chain from the head; COPY in committed batches.

    INSERT is allowed by the append-only triggers; moving the head row more than one step is not, so the
    head is updated at the end with the triggers suspended (audit.triggers.suspended), as a DBA would.
    """
    import psycopg
    from django.db import connection, transaction

    from audit import triggers
    from audit.canonical import canonical_bytes, chain_hash, format_time, leaf_hash
    from audit.models import AuditEvent, AuditHead

    head = AuditHead.objects.get(pk=1)
    start, chain = head.seq, bytes(head.chain_hash)
    if target <= start:
        return {"from": start, "to": start, "events": 0, "seconds": 0.0}
    last = AuditEvent.objects.filter(seq=start).values_list("occurred_at", flat=True).first()
    moment = max(last or dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC))
    body_bytes = 0
    started = time.perf_counter()
    statement = f"COPY audit_auditevent ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    with psycopg.connect(url) as conn:
        for first in range(start + 1, target + 1, batch):
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for seq in range(first, min(first + batch, target + 1)):
                    moment += dt.timedelta(microseconds=factory.rnd.randint(20, 400))
                    body_dict, columns = factory.make(seq, format_time(moment))
                    body = canonical_bytes(body_dict)
                    leaf = leaf_hash(body)
                    chain = chain_hash(chain, leaf)
                    body_bytes += len(body)
                    copy.write_row(
                        (
                            seq,
                            moment,
                            columns["actor_id"],
                            columns["actor_repr"],
                            columns["actor_kind"],
                            columns["action"],
                            columns["target_kind"],
                            columns["target_id"],
                            columns["target_repr"],
                            columns["asset_id"],
                            json.dumps(columns["changes"]),
                            columns["source"],
                            json.dumps(columns["context"]),
                            body,
                            leaf,
                            chain,
                        )
                    )
            conn.commit()
            print(f"     ... {min(first + batch - 1, target):,} events", flush=True)
    loaded = time.perf_counter() - started
    with transaction.atomic(), triggers.suspended(connection):
        AuditHead.objects.filter(pk=1).update(seq=target, chain_hash=chain)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_auditevent")  # what autovacuum would do to a settled table
    count = target - start
    return {
        "from": start,
        "to": target,
        "events": count,
        "seconds": round(time.perf_counter() - started, 2),
        "load_seconds": round(loaded, 2),
        "events_per_s": round(count / loaded),
        "mean_body_bytes": round(body_bytes / count),
    }


# 2 and 3. Subprocesses: exports and verifiers --------------------------------------------------------------


def run_measured(command: list[str], scratch: Path, name: str, database: str) -> dict:
    """Run a command to completion: wall time, CPU time and the peak RSS of that one process.

    The peak is VmHWM from /proc/<pid>/status, read every 20 ms while the process runs (it only grows).
    Not wait4's ru_maxrss: across vfork + exec Linux carries the parent's high-water mark into the child's,
    so every child of this (~100 MB) process would report at least the parent's size.
    The cores used meanwhile (by the process, by PostgreSQL, by everything else) are sampled every 0.25 s;
    the last sample before the process ends closes the window. A backend that exited meanwhile (Django
    closes its connection before the interpreter ends) counts with the CPU it had when last seen.
    """
    out_path, err_path = scratch / f"{name}.out", scratch / f"{name}.err"
    children_cpu = _children_cpu()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        peak_kib, polls = 0, 0
        first = last = cpu_sample(database, process.pid)
        seen = dict(first["postgres"]) if first else {}
        try:
            while process.poll() is None:
                peak_kib = max(peak_kib, _vm_hwm_kib(process.pid))
                polls += 1
                if polls % 12 == 0 and (sample := cpu_sample(database, process.pid)):
                    seen.update(sample["postgres"])
                    last = {**sample, "postgres": dict(seen)}
                time.sleep(0.02)
        except BaseException:
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - started
    cpu = _children_cpu() - children_cpu
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if process.returncode != 0:
        raise BenchError(
            f"{' '.join(command[1:4])} exited {process.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
        )
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu": cpu_usage(first, last, last["pid_cpu"] - first["pid_cpu"])
        if first and last is not first
        else {},
        "stdout": stdout,
    }


def _children_cpu() -> float:
    """CPU seconds of all the children waited for so far (cumulative)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def temp_bytes(url: str) -> int:
    """Bytes of temporary files PostgreSQL wrote for this database so far (e.g. materialised cursors)."""
    import psycopg

    time.sleep(0.6)  # backends report their statistics at exit or at most once a second
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        return int(row.fetchone()[0] or 0)


def manage_command(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def export_and_verify(size: int, url: str, scratch: Path, key: str) -> tuple[list[dict], Path]:
    """Sign a checkpoint, export jsonl and bundle, verify the database and the bundle; keeps the bundle."""
    from django.conf import settings

    database = urlsplit(url).path.lstrip("/")
    from audit import log

    rows = []
    started = time.perf_counter()
    log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    rows.append(
        {"events": size, "task": "checkpoint_make", "seconds": round(time.perf_counter() - started, 3)}
    )
    print(f"   {size:>9,} events: checkpoint signed in {rows[-1]['seconds']:.1f} s")
    files = {}
    for fmt in ("jsonl", "bundle"):
        path = scratch / f"audit-{size}.{'zip' if fmt == 'bundle' else 'jsonl'}"
        before = temp_bytes(url)
        result = run_measured(
            manage_command("audit_export", "--format", fmt, "--out", str(path)), scratch, fmt, database
        )
        result["server_temp_mb"] = round((temp_bytes(url) - before) / MB, 1)
        result["output_mb"] = round(path.stat().st_size / MB, 1)
        files[fmt] = path
        rows.append(_task_row(size, f"export {fmt}", result))
    before = temp_bytes(url)
    result = run_measured(manage_command("audit_verify", "--json"), scratch, "verify-db", database)
    result["server_temp_mb"] = round((temp_bytes(url) - before) / MB, 1)
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    if not report["ok"] or report["events"] != size:
        raise BenchError(f"audit_verify did not verify {size} events: {report}")
    rows.append(_task_row(size, "audit_verify (database)", result))
    verifier = str(ROOT / "audit" / "verify_bundle.py")
    result = run_measured(
        [sys.executable, verifier, str(files["bundle"]), "--key", key], scratch, "verify-zip", database
    )
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    if report.get("status") != "verified" or report.get("events") != size:
        raise BenchError(f"verify_bundle.py did not verify {size} events: {report}")
    result["own_events_per_s"] = report.get("events_per_second")
    rows.append(_task_row(size, "verify_bundle.py (bundle)", result))
    files["jsonl"].unlink()
    return rows, files["bundle"]


def _task_row(size: int, task: str, result: dict) -> dict:
    row = {"events": size, "task": task, **{k: v for k, v in result.items() if k != "stdout"}}
    row["events_per_s"] = round(size / result["seconds"]) if result["seconds"] else None
    print(
        f"   {size:>9,} events: {task:<26} {result['seconds']:>7.1f} s  {row['events_per_s']:>8,}/s  "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    return row


def baseline_rss(scratch: Path, database: str) -> dict:
    """A Django management command that does (almost) nothing: the RSS every command starts from."""
    result = run_measured(manage_command("audit_checkpoint"), scratch, "baseline", database)
    return {
        "task": "manage.py audit_checkpoint (nothing to sign)",
        **{k: v for k, v in result.items() if k != "stdout"},
    }


# 3. Hash rates and where a verifier's time goes -------------------------------------------------------------


def sha256_rate(size: int, count: int) -> float:
    message = os.urandom(size)
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for _ in range(count):
        sha256(message).digest()
    return count / (time.perf_counter() - started)


def per_event(function, items: list) -> float:
    """Microseconds per item of function(item), results dropped at once (as a verifier does)."""
    started = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def verifier_breakdown(sample: int, bundle: Path) -> dict:
    """Microseconds per event of each step that verify_log and verify_bundle.py do, on the first events.

    The inputs of each step are prepared first and frozen out of the garbage collector's sight
    (gc.freeze), so that holding `sample` events in memory does not bill GC passes to the steps."""
    import gc

    import rfc8785

    from audit import merkle
    from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
    from audit.models import AuditEvent

    query = AuditEvent.objects.filter(seq__lte=sample).order_by("seq")
    query = query.values_list("seq", "body", "leaf_hash", "chain_hash")
    started = time.perf_counter()
    count = sum(1 for _ in query.iterator(chunk_size=2000))
    database = {
        "database fetch (server-side cursor, 2000 a chunk)": (time.perf_counter() - started) / count * 1e6
    }
    rows = list(query.iterator(chunk_size=2000))
    bodies = [bytes(row[1]) for row in rows]
    parsed = [json.loads(body) for body in bodies]
    leaves = [leaf_hash(body) for body in bodies]
    with zipfile.ZipFile(bundle) as archive:
        started = time.perf_counter()
        for name in archive.namelist():
            with archive.open(name) as member:
                digest = hashlib.sha256()
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
        manifest_pass = time.perf_counter() - started
        total = json.loads(archive.read("manifest.json"))["events"]
        with archive.open("entries.jsonl") as member:
            started = time.perf_counter()
            lines = [raw for raw, _ in zip(member, range(sample), strict=False)]
            inflate_entries = (time.perf_counter() - started) / len(lines) * 1e6
        with archive.open("hashes.csv") as member:
            member.readline()
            started = time.perf_counter()
            csv_lines = [member.readline() for _ in range(len(lines))]
            inflate_hashes = (time.perf_counter() - started) / len(lines) * 1e6
    pairs = list(zip(csv_lines, leaves[: len(lines)], strict=True))
    gc.collect()
    gc.freeze()
    try:
        chained = [GENESIS_CHAIN]

        def chain(leaf):
            chained[0] = chain_hash(chained[0], leaf)

        compact = merkle.CompactRange()
        database["bytes(memoryview) of the body"] = per_event(lambda row: bytes(row[1]), rows)
        database["json.loads(body)"] = per_event(json.loads, bodies)
        database["rfc8785.dumps (canonical check)"] = per_event(rfc8785.dumps, parsed)
        database["leaf hash (SHA-256 of ~500 B)"] = per_event(leaf_hash, bodies)
        database["chain hash (SHA-256 of 65 B)"] = per_event(chain, leaves)
        database["Merkle CompactRange.append"] = per_event(compact.append, leaves)
        bundle_steps = {
            "manifest pass (inflate + SHA-256 of every file)": manifest_pass / total * 1e6,
            "inflate and split entries.jsonl": inflate_entries,
            "inflate hashes.csv, readline": inflate_hashes,
            "json.loads(line)": per_event(lambda line: json.loads(line[:-1]), lines),
            "leaf + chain hash": per_event(lambda line: chain(leaf_hash(line[:-1])), lines),
            "hashes.csv row: decode, split, hex, compare": per_event(
                lambda pair: pair[0].decode().strip().split(",") == ["1", pair[1].hex(), pair[1].hex()], pairs
            ),
            "Merkle CompactRange.append": per_event(merkle.CompactRange().append, leaves[: len(lines)]),
        }

        def compact_json(value) -> bytes:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

        alternative = per_event(compact_json, parsed)
    finally:
        gc.unfreeze()
    same = sum(compact_json(value) == body for value, body in zip(parsed, bodies, strict=True))
    return {
        "alternative": {
            "step": "json.dumps(sort_keys=True, separators=(',', ':'), ensure_ascii=False)",
            "us": round(alternative, 2),
            "same_bytes_as_stored_body": same,
        },
        "sample_events": count,
        "database_us": {k: round(v, 2) for k, v in database.items()},
        "bundle_us": {k: round(v, 2) for k, v in bundle_steps.items()},
    }


# Reporting ------------------------------------------------------------------------------------------------


def number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_writers(result: dict) -> None:
    header = (
        f"{'run':<25} {'writers':>7} {'procs':>5} {'calls':>7} {'errors':>6} {'calls/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'business':>8} {'wait':>6} {'held':>6} {'commit':>6} {'1/held':>6}  "
        f"{'cores: client':>13} {'db':>5} {'other':>5}"
    )
    print("\n1. Writers: registry.services.version_register, one asset per writer (times in ms)\n" + header)
    print("-" * len(header))
    disturbed = False
    for row in result["runs"]:
        cpu = row["cpu"] or {}
        flag = cpu.get("other_cores", 0) >= DISTURBED_CORES
        disturbed |= flag
        cap = 1000 / row["held_ms"] if row["held_ms"] else None  # appends/s if the lock were all that counted
        print(
            f"{row['run']:<25} {row['writers']:>7} {row['procs']:>5} {row['calls']:>7} {row['errors']:>6} "
            f"{row['calls_per_s']:>8.1f} {number(row['p50_ms']):>7} {number(row['p99_ms']):>7} "
            f"{number(row['business_ms']):>8} {number(row['wait_ms']):>6} {number(row['held_ms']):>6} "
            f"{number(row['commit_ms']):>6} {number(cap, 0):>6}  "
            f"{number(cpu.get('client_cores')):>13} {number(cpu.get('database_cores')):>5} "
            f"{number(cpu.get('other_cores')):>5}" + ("  <- disturbed" if flag else "")
        )
        for message, count in row["error_samples"].items():
            print(f"    error: {count} x {message}")
    if disturbed:
        print(
            f"Other processes took {DISTURBED_CORES:g}+ cores during the runs marked: "
            "measure again on a quiet machine."
        )
    print()
    for ratio in result["ratios"]:
        verdict = ""
        if ratio["target"] is not None:
            verdict = f"   target ≥ {ratio['target']:g}: {'pass' if ratio['pass'] else 'MISS'}"
        print(
            f"audited / un-audited, {ratio['writers']:>2} writer(s): {ratio['audited_per_s']:.1f} / "
            f"{ratio['unaudited_per_s']:.1f} = {number(ratio['ratio'])}{verdict}"
        )
    for check in result["log_checks"]:
        print(
            f"log after {check['after']}: {check['count']} events, "
            f"seq {check['min_seq']}..{check['max_seq']}, "
            f"head {check['head_seq']}, expected {expected_text(check)}; verify_log(record=False) "
            f"{'ok' if check['verify_ok'] else 'FAILED: ' + check['verify_problem']} "
            f"({check['verify_events']} events, {check['verify_seconds']:.2f} s); occurred_at goes back "
            f"{check['time_inversions']} times (at most {check['worst_inversion_ms']} ms)"
        )


def print_exports(fills: list[dict], rows: list[dict], baseline: dict) -> None:
    print("\n2. Bulk fill (COPY, chain computed in Python)")
    for fill in fills:
        if fill["events"]:
            print(
                f"   seq {fill['from'] + 1:,}..{fill['to']:,}: {fill['events']:,} events "
                f"in {fill['seconds']:.1f} s "
                f"({fill['events_per_s']:,}/s while loading, mean body {fill['mean_body_bytes']} bytes; "
                "VACUUM ANALYZE included)"
            )
    header = (
        f"{'events':>9} {'task':<26} {'seconds':>8} {'events/s':>9} {'output MB':>9} {'peak RSS MB':>11} "
        f"{'CPU s':>6} {'pg temp MB':>10}  {'cores: task':>11} {'db':>5} {'other':>5}"
    )
    print("\n2-3. Export and verification, each a subprocess (peak RSS of that process)\n" + header)
    print("-" * len(header))
    disturbed = False
    for row in rows:
        cpu = row.get("cpu") or {}
        flag = cpu.get("other_cores", 0) >= DISTURBED_CORES
        disturbed |= flag
        print(
            f"{row['events']:>9,} {row['task']:<26} {row['seconds']:>8.1f} "
            f"{number(row.get('events_per_s'), 0):>9} {number(row.get('output_mb'), 1):>9} "
            f"{number(row.get('peak_rss_mb'), 1):>11} {number(row.get('cpu_seconds'), 1):>6} "
            f"{number(row.get('server_temp_mb'), 1):>10}  {number(cpu.get('client_cores')):>11} "
            f"{number(cpu.get('database_cores')):>5} {number(cpu.get('other_cores')):>5}"
            + ("  <- disturbed" if flag else "")
        )
    if disturbed:
        print(
            f"Other processes took {DISTURBED_CORES:g}+ cores during the tasks marked: "
            "their rates are too low."
        )
    print(f"baseline: {baseline['task']}: peak RSS {baseline['peak_rss_mb']:.1f} MB")
    sizes = sorted({row["events"] for row in rows})
    if len(sizes) == 2:
        small, big = sizes
        for task in sorted({row["task"] for row in rows if "peak_rss_mb" in row}):
            a = next(r for r in rows if r["events"] == small and r["task"] == task)
            b = next(r for r in rows if r["events"] == big and r["task"] == task)
            print(
                f"peak RSS {task:<26} {small:>9,} -> {big:,} events: {a['peak_rss_mb']:.1f} -> "
                f"{b['peak_rss_mb']:.1f} MB ({b['peak_rss_mb'] - a['peak_rss_mb']:+.1f} MB for "
                f"{big / small:.0f}x the events)"
            )


def print_hashing(hashing: dict, rows: list[dict], breakdown: dict) -> None:
    print("\n3. Verification rate against the raw SHA-256 rate (one core, Python's hashlib)")
    print(
        f"   sha256 of 400 B: {hashing['sha256_400_per_s']:,.0f}/s   "
        f"of 65 B: {hashing['sha256_65_per_s']:,.0f}/s"
        f"   raw(400 B)/3: {hashing['raw_over_3']:,.0f} events/s   "
        f"ideal 1/(t400 + 2 x t65): {hashing['ideal_events_per_s']:,.0f} events/s"
    )
    big = max(row["events"] for row in rows)
    for row in rows:
        if row["events"] == big and row["task"].startswith(("audit_verify", "verify_bundle")):
            print(
                f"   {row['task']:<26} {row['events_per_s']:>9,} events/s = "
                f"{row['events_per_s'] / hashing['raw_over_3']:.1%} of raw/3, "
                f"{row['events_per_s'] / hashing['ideal_events_per_s']:.1%} of ideal"
            )
    for title, key in (("audit_verify (database)", "database_us"), ("verify_bundle.py", "bundle_us")):
        steps = breakdown[key]
        print(
            f"\n   where {title} spends its time, µs per event ({breakdown['sample_events']:,}-event sample)"
        )
        for step, value in sorted(steps.items(), key=lambda item: -item[1]):
            print(f"     {value:>8.2f}  {step}")
        print(f"     {sum(steps.values()):>8.2f}  total of the steps")
    alternative = breakdown["alternative"]
    print(
        f"\n   not used, for comparison: {alternative['step']}: {alternative['us']:.2f} µs per event; "
        f"byte-identical to the stored canonical body for {alternative['same_bytes_as_stored_body']:,} of "
        f"{breakdown['sample_events']:,} events"
    )


# Main -------------------------------------------------------------------------------------------------------


class Database(ScratchDatabase):
    """The scratch database; this process's own Django connections are closed before it is dropped."""

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        super().drop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_AUDIT_PG_URL", "postgres://postgres@127.0.0.1:5432/audit_bench"),
        help="the scratch database; DROPPED and created again (its name must contain 'bench')",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events to export and verify (and /10)")
    parser.add_argument("--writers", type=int, default=16, help="concurrent writers of the throughput runs")
    parser.add_argument("--procs", type=int, default=2, help="processes the writers are spread over")
    parser.add_argument("--seconds", type=float, default=10, help="seconds of each throughput run")
    parser.add_argument(
        "--warmup", type=int, default=160, help="unmeasured calls before each run (all writers)"
    )
    parser.add_argument(
        "--no-diagnostic", dest="diagnostic", action="store_false", help="skip the synchronous_commit=off run"
    )
    parser.add_argument("--skip-writers", action="store_true", help="only the export and verification parts")
    parser.add_argument("--skip-export", action="store_true", help="only the throughput part")
    parser.add_argument("--sample", type=int, default=100_000, help="events of the verifier breakdown")
    args = parser.parse_args(argv)
    if args.events < 10 or args.writers < 1 or args.procs < 1 or args.seconds <= 0:
        parser.error("--events must be at least 10, --writers and --procs at least 1, --seconds above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill cleans up like Ctrl-C
    started = dt.datetime.now(dt.UTC)
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "django": version_of("django"),
        "psycopg": version_of("psycopg"),
        "args": {key: value for key, value in vars(args).items() if key != "pg_url"},
    }
    results: dict = {"meta": meta}
    try:
        database = Database(args.pg_url)
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="audit-bench-")))
            os.environ.update(
                DATABASE_URL=args.pg_url,
                DJANGO_SETTINGS_MODULE="config.settings.base",
                DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                DJANGO_DEBUG="false",
                DJANGO_SECURE_SSL_REDIRECT="false",
                DJANGO_LOG_LEVEL="WARNING",
                AUDIT_SIGNING_KEY_FILE=str(scratch / "audit-signing-key.pem"),
                AUDIT_SIGNING_KEY_AUTOCREATE="true",  # made below, once migrated
                PYTHONUNBUFFERED="1",
            )
            print(f"== setup: database {database.name}, migrate, signing key in {scratch}")
            database.create()
            stack.callback(database.drop)
            meta["postgres"] = database.server_version
            django_setup()
            from django.core.management import call_command

            from audit import signing

            call_command("migrate", interactive=False, verbosity=0)
            signing.generate_key_file(scratch / "audit-signing-key.pem")
            key = signing.verifier_key()
            if not args.skip_writers:
                results["writers"] = bench_writers(args, database.name)
            if not args.skip_export:
                results.update(bench_export(args, database.url, scratch, key))
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the scratch database dropped and temporary files removed", file=sys.stderr)
        return 130
    if "writers" in results:
        print_writers(results["writers"])
    if "exports" in results:
        print_exports(results["fills"], results["exports"], results["baseline"])
        print_hashing(results["hashing"], results["exports"], results["breakdown"])
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"audit-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {path.relative_to(ROOT)}")
    return 0


def bench_export(args: argparse.Namespace, url: str, scratch: Path, key: str) -> dict:
    small, big = max(args.events // 10, 1), args.events
    print(f"\n== 2-3. fill the log to {small:,} then {big:,} events; export and verify at both sizes")
    from audit.models import AuditHead

    factory = EventFactory()
    fills, rows, bundle = [], [], None
    baseline = baseline_rss(scratch, urlsplit(url).path.lstrip("/"))
    for size in (small, big):
        fill = fill_log(url, size, factory)
        fills.append(fill)
        size = AuditHead.objects.get(pk=1).seq  # the writers' runs may already have passed `small`
        if fill["events"]:
            print(f"   filled to {size:,} in {fill['seconds']:.1f} s")
        if bundle is not None:
            bundle.unlink()
        new_rows, bundle = export_and_verify(size, url, scratch, key)
        rows += new_rows
    rates = {"sha256_400_per_s": sha256_rate(400, 1_000_000), "sha256_65_per_s": sha256_rate(65, 1_000_000)}
    rates["raw_over_3"] = rates["sha256_400_per_s"] / 3
    rates["ideal_events_per_s"] = 1 / (1 / rates["sha256_400_per_s"] + 2 / rates["sha256_65_per_s"])
    rates = {key_: round(value) for key_, value in rates.items()}
    breakdown = verifier_breakdown(min(args.sample, big), bundle)
    bundle.unlink()
    return {"fills": fills, "exports": rows, "baseline": baseline, "hashing": rates, "breakdown": breakdown}


if __name__ == "__main__":
    sys.exit(main())
