#!/usr/bin/env python
"""What the audit log costs: append throughput under concurrency, export and verification of 1M events.

PostgreSQL only, on a scratch database created and dropped by the script. 1. `version_register` by
`--writers` concurrent writers, audited and with `audit_record` replaced by a no-op; 2. the log filled in
bulk to `--events / 10` and `--events` events, exported (jsonl, bundle) by subprocesses; 3. verified
(`audit_verify`, `audit/verify_bundle.py`) against the machine's raw SHA-256 rate. bench/README.md says how
to read the tables. Results go to bench/results/audit-<UTC time>.json.

    .venv/bin/python bench/audit.py --events 2000 --seconds 2 --writers 4 --sample 2000    # quick
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also in spawned writer processes
import common  # puts the project root first on sys.path: `audit` is the app, not this file
from common import ROOT, BenchError, number

BENCH_USER = "audit-bench"
USER_AGENT = "registry-cli/1.4.2 python-requests/2.32.3 (bench)"
RATIO_TARGET = 0.7  # product target: audited / un-audited calls per second with 16 writers
MB = 1024 * 1024
PHASES = ("latencies", "business", "wait", "held", "commit")  # per call, see writer_thread


# 1. Writers (in spawned processes) -------------------------------------------------------------------------


def writer_setup(spec: dict):
    """Once per writer process: Django, and audit_record wrapped (timed) or replaced by a no-op."""
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    from registry import services

    marks, real = threading.local(), services.audit_record

    def audit_record(**kwargs):
        marks.entered = time.perf_counter()
        event = real(**kwargs) if spec["audited"] else None  # the no-op keeps the business writes
        marks.left = time.perf_counter()
        return event

    services.audit_record = audit_record
    if spec.get("at_record"):
        from audit import services as audit_services

        audit_services.APPEND_AT_COMMIT = False  # every event appended where it is recorded
    if spec.get("synchronous_commit_off"):

        def relax(sender, connection, **kwargs):
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")

        connection_created.connect(relax, weak=False)
    return marks


def writer_thread(spec: dict, asset_id: int, marks, ready, go) -> dict:
    """One writer on its own asset and connection: a warm-up, then version_register until the deadline.

    Phases of each call: `business` until audit_record is entered; `wait` until the head row's SELECT ...
    FOR UPDATE returns; `held` from then to the end of the commit (the lock is released at commit);
    `commit` from audit_record's return to the end of the commit."""
    from django.db import connection

    from accounts.models import User
    from core.source import Channel, Source
    from registry import services
    from registry.models import Asset

    stats = {key: [] for key in PHASES} | {"completed": 0, "errors": Counter()}

    def spot_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if ("FOR UPDATE" in sql and '"audit_audithead"' in sql) or "audit_append(" in sql:
            # On PostgreSQL the lock is taken inside audit_append(): `wait` is then the whole statement.
            # (An event positioned at commit takes it inside the COMMIT: no client-side mark, no wait/held.)
            marks.locked = time.perf_counter()
        return result

    def one(record: bool) -> None:
        request_id = uuid.uuid4().hex
        source = Source(channel=Channel.API, request_id=request_id, ip="10.20.30.40", user_agent=USER_AGENT)
        # what a CI job registers: a new digest every time, an artifact URI, two metrics and a tag
        uri = f"s3://models/{asset.name}/{stats['completed']}/model.tar.gz"
        data = {"digest": "sha256:" + os.urandom(32).hex(), "uri": uri, "metrics": {"auc": 0.91, "f1": 0.87}}
        data["tags"] = ["bench"]
        marks.locked, started = None, time.perf_counter()
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
            user, asset = User.objects.get(username=BENCH_USER), Asset.objects.get(pk=asset_id)
            for _ in range(spec["warmup"]):
                one(record=False)
        except Exception as exc:
            stats["errors"][f"setup failed: {type(exc).__name__}: {exc}"] += 1
            ready.wait()
            return stats
        ready.wait()
        go.wait()
        stats["warmup_completed"] = stats["completed"]
        deadline = time.perf_counter() + spec["seconds"]
        while time.perf_counter() < deadline:
            one(record=True)
    return stats  # the connection stays open until the process exits: its backend's CPU is sampled


# 1. Writers (driven from the main process) -----------------------------------------------------------------


def run_writers(spec: dict, asset_ids: list[int], procs: int, database: str) -> dict:
    """One writer per asset over `procs` processes for spec['seconds']; the merged figures."""
    groups = [group for group in (asset_ids[i::procs] for i in range(min(procs, len(asset_ids)))) if group]
    owner = common.postgres_owner(database)
    parts, wall, usage = common.run_clients(
        writer_thread, groups, spec, spec["seconds"] + 120, owner, writer_setup
    )
    latencies = sorted(v for part in parts for v in part["latencies"])
    errors = common.merge_errors(parts)
    return {
        "writers": len(asset_ids),
        "procs": len(groups),
        "calls": len(latencies),
        "calls_total": sum(part["completed"] for part in parts),  # warm-up included
        "errors": sum(errors.values()),
        "error_samples": dict(errors.most_common(5)),
        "seconds": round(wall, 2),
        "calls_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": common.ms(common.percentile(latencies, 50)),
        "p99_ms": common.ms(common.percentile(latencies, 99)),
        **{
            f"{key}_ms": common.latency_summary([v for p in parts for v in p[key]])["mean_ms"]
            for key in PHASES[1:]
        },
        "cpu": common.cores(usage, "client", "database"),
    }


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
        return [
            services.asset_create(
                actor=user, source=Source.cli(), kind=AssetKind.MODEL, name=f"bench-writer-{index:02d}"
            ).pk
            for index in range(count)
        ]
    finally:
        services.audit_record = real


def check_log(expected: int) -> dict:
    """The log after the audited runs: seq 1..N without a gap, N = the audited calls; verify_log; and the
    events whose occurred_at is earlier than their predecessor's (time order should follow seq order)."""
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
    started = time.perf_counter()
    result = verify_log(record=False)
    return {
        "expected": expected,
        "count": figures["count"],
        "min_seq": figures["low"],
        "max_seq": figures["high"],
        "head_seq": head,
        "gapless": figures["count"] == figures["high"] == head == expected and figures["low"] in (1, None),
        "verify_ok": result.ok,
        "verify_events": result.events,
        "verify_problem": result.problem,
        "verify_seconds": round(time.perf_counter() - started, 3),
        "time_inversions": inversions,
        "worst_inversion_ms": round(float(worst_ms), 3),
    }


def log_check_text(check: dict) -> str:
    verdict = "ok" if check["verify_ok"] else "FAILED: " + check["verify_problem"]
    return (
        f"{check['count']} events, seq {check['min_seq']}..{check['max_seq']}, head {check['head_seq']}, "
        f"expected {check['expected']} ({'gapless' if check['gapless'] else 'GAP OR MISMATCH'}); "
        f"verify_log(record=False) {verdict}"
    )


def bench_writers(args: argparse.Namespace, database: str) -> dict:
    from django.db import connection

    print(f"\n== 1. writers: version_register for {args.seconds:g} s per run, audited and not")
    asset_ids = setup_writers(args.writers)
    many = (args.writers, args.procs)
    runs = [("un-audited", *many, False), ("audited", *many, True)]
    runs += [("un-audited", 1, 1, False), ("audited", 1, 1, True)]
    if connection.vendor == "postgresql":
        # The comparison: every event appended where it is recorded, its lock held through the COMMIT's round
        # trip (audit.services.APPEND_AT_COMMIT = False), against the default, appended inside the COMMIT.
        runs += [("audited, at record", *many, True), ("audited, at record", 1, 1, True)]
    runs += [("audited, sync commit off", *many, True)] if args.diagnostic else []
    rows, checks, audited_calls = [], [], 0
    for label, writers, procs, audited in runs:
        extra = {"audited": audited} | ({"synchronous_commit_off": True} if "off" in label else {})
        extra |= {"at_record": True} if "at record" in label else {}
        spec = {"seconds": args.seconds, "warmup": max(1, args.warmup // writers), **extra}
        print(f"   {label:<25} {writers:>2} writer(s) in {procs} process(es) ...", end="", flush=True)
        row = {"run": label, **extra, **run_writers(spec, asset_ids[:writers], procs, database)}
        print(f" {row['calls_per_s']:.0f} calls/s, p50 {row['p50_ms']} ms, errors {row['errors']}")
        rows.append(row)
        if audited:
            audited_calls += row["calls_total"]
            checks.append({"after": f"{label}, {writers} writer(s)", **check_log(audited_calls)})
            print(f"   log check: {log_check_text(checks[-1])}")
    ratios = []
    for writers in (args.writers, 1):
        plain = next(r for r in rows if r["run"] == "un-audited" and r["writers"] == writers)
        audited = next(r for r in rows if r["run"] == "audited" and r["writers"] == writers)
        ratio = audited["calls_per_s"] / plain["calls_per_s"] if plain["calls_per_s"] else None
        target = RATIO_TARGET if writers == args.writers else None
        passed = None if target is None or ratio is None else ratio >= target
        figures = {"audited_per_s": audited["calls_per_s"], "unaudited_per_s": plain["calls_per_s"]}
        rounded = round(ratio, 3) if ratio is not None else None
        ratios.append({"writers": writers, **figures, "ratio": rounded, "target": target, "pass": passed})
        at_record = [r for r in rows if r["run"] == "audited, at record" and r["writers"] == writers]
        at_record = at_record[0] if at_record else None
        if at_record is not None and plain["calls_per_s"]:
            ratios[-1]["at_record_per_s"] = at_record["calls_per_s"]
            ratios[-1]["at_record_ratio"] = round(at_record["calls_per_s"] / plain["calls_per_s"], 3)
    return {"runs": rows, "ratios": ratios, "log_checks": checks}


# 2. Bulk fill -----------------------------------------------------------------------------------------------

AREAS = ["fraud", "churn", "ranking", "ocr", "pricing", "support", "credit", "search"]
MODELS = [f"{area}-{kind}" for area in AREAS for kind in ("classifier", "detector", "scorer")]
DATASETS = ["transactions", "customers", "clicks", "invoices", "tickets"]
PEOPLE = [(10 + i, name) for i, name in enumerate(["alice", "bob", "chen", "dana", "eve", "farid"])]
PEOPLE += [(40 + i, f"ml-engineer-{i:02d}") for i in range(24)]
SERVICE_ACCOUNTS = [(90, "ci-fraud"), (91, "ci-ranking"), (92, "ci-pricing")]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0", "registry-cli/1.4.2"]
AGENTS.append("registry-action/1.2.0")
# action: weight, roughly what a registry that CI feeds records
ACTIONS = {"version.created": 25, "evaluation.added": 15, "stage.set": 12, "login.succeeded": 22}
ACTIONS |= {
    "asset.updated": 8,
    "promotion.approved": 6,
    "grant.added": 4,
    "token.created": 3,
    "login.failed": 5,
}


class EventFactory:
    """Synthetic events shaped like the ones the services record, ~490 bytes of canonical body each."""

    def __init__(self, seed: int = 1) -> None:
        self.rnd = random.Random(seed)
        self.actions = [action for action, weight in ACTIONS.items() for _ in range(weight)]

    def auc(self) -> dict:
        return {"auc": f"0.{self.rnd.randint(800, 999)}"}

    def hex(self, bits: int) -> str:
        return f"{self.rnd.getrandbits(bits):0{bits // 4}x}"

    def make(self, seq: int, occurred: dt.datetime) -> dict:
        """The event's columns (the body is built from them)."""
        rnd = self.rnd
        action = rnd.choice(self.actions)
        service = action in ("version.created", "evaluation.added") and rnd.random() < 0.6
        actor_id, name = rnd.choice(SERVICE_ACCOUNTS if service else PEOPLE)
        kind = "service_account" if service else "user"
        index = rnd.randrange(len(MODELS))
        asset_id, asset, number = 100 + index, f"model/{MODELS[index]}", rnd.randint(1, 400)
        context = {"request_id": self.hex(128), "ip": f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.7"}
        context["user_agent"] = AGENTS[2] if service else rnd.choice(AGENTS[:2])
        source = "api" if service or context["user_agent"] == AGENTS[1] else "web"
        if action == "version.created":
            target = ("registry.assetversion", str(rnd.randint(1, 10**6)), f"{asset}@{number}")
            after = {"number": number, "digest": "sha256:" + self.hex(256), "metrics": self.auc()}
            after |= {"uri": f"s3://models/{MODELS[index]}/{number}", "source": {}, "lineage": []}
            changes = {"after": after}
        elif action == "evaluation.added":
            target = ("registry.evaluation", str(rnd.randint(1, 10**6)), f"holdout of {asset}@{number}")
            after = {"version": f"{asset}@{number}", "name": "holdout", "metrics": self.auc()}
            changes = {"after": after | {"dataset": f"dataset/{rnd.choice(DATASETS)}@{rnd.randint(1, 50)}"}}
        elif action == "stage.set":
            target = ("registry.stagepointer", str(rnd.randint(1, 5000)), f"{asset}:staging")
            changes = {"stage": "staging", "before": {"version": number - 1}, "after": {"version": number}}
            changes |= {"reason": "retrained", "promotion": None}
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
            changes = {"scopes": ["read", "write"], "expires_at": "2027-01-31T00:00:00.000000Z"}
            asset_id = None
        elif action == "login.succeeded":
            target, asset_id, changes = ("accounts.user", str(actor_id), name), None, {}
        else:  # login.failed: no actor, the target is the username that was tried
            actor_id, kind, target, asset_id = None, "system", ("accounts.user", "", name), None
            changes = {"username": name, "reason": "wrong password"}
        return {
            "seq": seq,
            "occurred_at": occurred,
            "actor_id": actor_id,
            "actor_repr": "system" if actor_id is None else name,
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


def fill_log(url: str, target: int, factory: EventFactory, batch: int = 100_000) -> dict:
    """Append events up to seq `target`, continuing the chain from the head; COPY in committed batches.
    INSERT is allowed by the append-only triggers, moving the head row more than one step is not: the head
    is moved at the end with the triggers suspended (audit.triggers.suspended), as a DBA would."""
    import psycopg
    from django.db import connection, transaction

    from audit import triggers
    from audit.models import AuditEvent, AuditHead

    head = AuditHead.objects.get(pk=1)
    start, chain = head.seq, bytes(head.chain_hash)
    if target <= start:
        return {"from": start, "to": start, "events": 0, "seconds": 0.0}
    last = AuditEvent.objects.filter(seq=start).values_list("occurred_at", flat=True).first()
    moment = max(last or dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC))
    body_bytes, started = 0, time.perf_counter()
    statement = f"COPY audit_auditevent ({', '.join(common.event_columns())}) FROM STDIN"
    with psycopg.connect(url) as conn:
        for first in range(start + 1, target + 1, batch):
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for seq in range(first, min(first + batch, target + 1)):
                    moment += dt.timedelta(microseconds=factory.rnd.randint(20, 400))
                    row = common.event_row(factory.make(seq, moment), chain)
                    chain, body_bytes = row[-1], body_bytes + len(row[-3])
                    copy.write_row(row)
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


# 2 and 3. Subprocesses: exports and verifiers ---------------------------------------------------------------


def run_measured(command: list[str], scratch: Path, name: str, database: str) -> dict:
    """Run a command to completion: wall time, CPU time, the peak RSS of that one process and the cores
    used meanwhile. The peak is VmHWM from /proc/<pid>/status, read every 20 ms (not wait4's ru_maxrss:
    across vfork + exec Linux carries the parent's high-water mark into the child's)."""
    import subprocess

    out_path, err_path = scratch / f"{name}.out", scratch / f"{name}.err"
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = usage.ru_utime + usage.ru_stime
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        meter, peak_kib = common.CpuMeter(interval=0.25), 0
        try:
            while process.poll() is None:
                with contextlib.suppress(OSError, ValueError, StopIteration):
                    status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
                    peak_kib = max(
                        peak_kib, int(next(s for s in status if s.startswith("VmHWM:")).split()[1])
                    )
                time.sleep(0.02)
        except BaseException:
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - started
    in_database = common.postgres_owner(database)
    usage = meter.stop(lambda pid, *rest: "client" if pid == process.pid else in_database(pid, *rest))
    cpu = (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN)) - children_cpu
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if process.returncode != 0:
        raise BenchError(
            f"{' '.join(command[1:4])} exited {process.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
        )
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu": common.cores(usage, "client", "database"),
        "stdout": stdout,
    }


def temp_bytes(url: str) -> int:
    """Bytes of temporary files PostgreSQL wrote for this database so far (e.g. materialised cursors)."""
    import psycopg

    time.sleep(0.6)  # backends report their statistics at exit or at most once a second
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        return int(row.fetchone()[0] or 0)


def task_row(size: int, task: str, result: dict) -> dict:
    row = {"events": size, "task": task, **{k: v for k, v in result.items() if k != "stdout"}}
    row["events_per_s"] = round(size / result["seconds"]) if result["seconds"] else None
    print(
        f"   {size:>9,} events: {task:<26} {result['seconds']:>7.1f} s  {row['events_per_s']:>8,}/s  "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    return row


def export_and_verify(
    size: int, database: common.ScratchDatabase, scratch: Path, key: str
) -> tuple[list, Path]:
    """Sign a checkpoint, export jsonl and bundle, verify the database and the bundle; keeps the bundle."""
    from django.conf import settings

    from audit import log

    started = time.perf_counter()
    log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    rows = [{"events": size, "task": "checkpoint_make", "seconds": round(time.perf_counter() - started, 3)}]
    print(f"   {size:>9,} events: checkpoint signed in {rows[-1]['seconds']:.1f} s")
    files = {
        fmt: scratch / f"audit-{size}.{'zip' if fmt == 'bundle' else 'jsonl'}" for fmt in ("jsonl", "bundle")
    }
    runs = [
        (f"export {fmt}", fmt, ["audit_export", "--format", fmt, "--out", str(path)])
        for fmt, path in files.items()
    ]
    runs.append(("audit_verify (database)", "verify-db", ["audit_verify", "--json"]))
    for task, name, command in runs:
        before = temp_bytes(database.url)
        result = run_measured([sys.executable, "manage.py", *command], scratch, name, database.name)
        result["server_temp_mb"] = round((temp_bytes(database.url) - before) / MB, 1)
        if name in files:
            result["output_mb"] = round(files[name].stat().st_size / MB, 1)
        rows.append(task_row(size, task, result))
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    if not report["ok"] or report["events"] != size:
        raise BenchError(f"audit_verify did not verify {size} events: {report}")
    verifier = [sys.executable, str(ROOT / "audit" / "verify_bundle.py"), str(files["bundle"]), "--key", key]
    result = run_measured(verifier, scratch, "verify-zip", database.name)
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    if report.get("status") != "verified" or report.get("events") != size:
        raise BenchError(f"verify_bundle.py did not verify {size} events: {report}")
    result["own_events_per_s"] = report.get("events_per_second")
    rows.append(task_row(size, "verify_bundle.py (bundle)", result))
    files["jsonl"].unlink()
    return rows, files["bundle"]


# 3. Hash rates and where a verifier's time goes -------------------------------------------------------------


def sha256_rate(size: int, count: int) -> float:
    message, sha256 = os.urandom(size), hashlib.sha256
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
    The inputs of each step are prepared first and frozen out of the garbage collector's sight (gc.freeze),
    so that holding `sample` events in memory does not bill GC passes to the steps."""
    import importlib.util

    import orjson
    import rfc8785
    from django.db import connection

    from audit import merkle, verify_range
    from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
    from audit.canonical_check import canonical_object

    spec = importlib.util.spec_from_file_location("verify_bundle", ROOT / "audit" / "verify_bundle.py")
    verify_bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verify_bundle)
    sql = (
        "SELECT seq, body, leaf_hash, chain_hash FROM audit_auditevent WHERE seq > %s AND seq <= "
        f"{int(sample)} ORDER BY seq LIMIT %s"
    )
    connection.ensure_connection()
    started = time.perf_counter()
    rows = [
        row
        for page in verify_range.pages(connection.connection.cursor(binary=True), sql, 10_000)
        for row in page
    ]
    count = len(rows)
    fetch = (time.perf_counter() - started) / count * 1e6
    database = {"database fetch (plain SQL, binary, pages of 10,000)": fetch}
    bodies = [row[1] for row in rows]
    parsed = [orjson.loads(body) for body in bodies]
    leaves = [leaf_hash(body) for body in bodies]
    with zipfile.ZipFile(bundle) as archive:
        total = json.loads(archive.read("manifest.json"))["events"]
        started = time.perf_counter()
        member = verify_bundle._Member(archive, "entries.jsonl")
        lines = [line for line, _ in zip(member.lines(), range(sample), strict=False)]
        read_entries = (time.perf_counter() - started) / len(lines) * 1e6
        member = verify_bundle._Member(archive, "hashes.csv")
        started = time.perf_counter()
        csv_lines = [line for line, _ in zip(member.lines(), range(len(lines) + 1), strict=False)][1:]
        read_hashes = (time.perf_counter() - started) / len(lines) * 1e6
    pairs = list(zip(csv_lines, leaves[: len(lines)], strict=True))
    hexlify = verify_bundle.binascii.hexlify
    gc.collect()
    gc.freeze()
    try:
        chained = [GENESIS_CHAIN]

        def chain(leaf):
            chained[0] = chain_hash(chained[0], leaf)

        database["canonical_object (orjson read and write, byte checks)"] = per_event(
            canonical_object, bodies
        )
        database["leaf hash (SHA-256 of ~500 B)"] = per_event(leaf_hash, bodies)
        database["chain hash (SHA-256 of 65 B)"] = per_event(chain, leaves)
        database["Merkle CompactRange.push"] = per_event(merkle.CompactRange().push, leaves)
        bundle_steps = {
            "entries.jsonl: wait for the reader thread (inflate, SHA-256), split": read_entries,
            "hashes.csv: the same": read_hashes,
            "orjson.loads(line)": per_event(orjson.loads, lines),
            "leaf + chain hash": per_event(lambda line: chain(leaf_hash(line)), lines),
            "hashes.csv row: write the expected row, compare": per_event(
                lambda pair: pair[0] == b"%d,%b" % (1, hexlify(pair[1] + pair[1], b",", 32)), pairs
            ),
            "Merkle CompactRange.push": per_event(merkle.CompactRange().push, leaves[: len(lines)]),
        }
        slow = per_event(rfc8785.dumps, parsed)
    finally:
        gc.unfreeze()
    quick = sum(canonical_object(body) is not None for body in bodies)
    return {
        "alternative": {"step": "rfc8785.dumps", "us": round(slow, 2), "proven_by_the_quick_check": quick},
        "sample_events": count,
        "bundle_events": total,
        "database_us": {k: round(v, 2) for k, v in database.items()},
        "bundle_us": {k: round(v, 2) for k, v in bundle_steps.items()},
    }


def bench_export(args: argparse.Namespace, database: common.ScratchDatabase, scratch: Path, key: str) -> dict:
    small, big = max(args.events // 10, 1), args.events
    print(f"\n== 2-3. fill the log to {small:,} then {big:,} events; export and verify at both sizes")
    from audit.models import AuditHead

    factory, fills, rows, bundle = EventFactory(), [], [], None
    command = [sys.executable, "manage.py", "audit_checkpoint"]
    result = run_measured(command, scratch, "baseline", database.name)
    baseline = {"task": "manage.py audit_checkpoint (nothing to sign)"}
    baseline |= {k: v for k, v in result.items() if k != "stdout"}
    for size in (small, big):
        fills.append(fill_log(database.url, size, factory))
        size = AuditHead.objects.get(pk=1).seq  # the writers' runs may already have passed `small`
        if fills[-1]["events"]:
            print(f"   filled to {size:,} in {fills[-1]['seconds']:.1f} s")
        if bundle is not None:
            bundle.unlink()
        new_rows, bundle = export_and_verify(size, database, scratch, key)
        rows += new_rows
    rates = {"sha256_400_per_s": sha256_rate(400, 1_000_000), "sha256_65_per_s": sha256_rate(65, 1_000_000)}
    rates["raw_over_3"] = rates["sha256_400_per_s"] / 3
    rates["ideal_events_per_s"] = 1 / (1 / rates["sha256_400_per_s"] + 2 / rates["sha256_65_per_s"])
    rates = {name: round(value) for name, value in rates.items()}
    breakdown = verifier_breakdown(min(args.sample, big), bundle)
    bundle.unlink()
    return {"fills": fills, "exports": rows, "baseline": baseline, "hashing": rates, "breakdown": breakdown}


# Reporting ------------------------------------------------------------------------------------------------


def flagged(row: dict) -> bool:
    cpu = row.get("cpu") or {}
    return cpu.get("other_cores", 0) + cpu.get("steal_cores", 0) >= common.DISTURBED_CORES


def cores_text(row: dict, width: int) -> str:
    cpu = row.get("cpu") or {}
    client, db, other = (number(cpu.get(f"{part}_cores")) for part in ("client", "database", "other"))
    return f"{client:>{width}} {db:>5} {other:>5}"


def print_writers(result: dict) -> None:
    header = (
        f"{'run':<25} {'writers':>7} {'procs':>5} {'calls':>7} {'errors':>6} {'calls/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'business':>8} {'wait':>6} {'held':>6} {'commit':>6} {'1/held':>6}  "
        f"{'cores: client':>13} {'db':>5} {'other':>5}"
    )
    print("\n1. Writers: registry.services.version_register, one asset per writer (times in ms)")
    lines = []
    for row in result["runs"]:
        cap = 1000 / row["held_ms"] if row["held_ms"] else None  # appends/s if the lock were all that counted
        lines.append(
            f"{row['run']:<25} {row['writers']:>7} {row['procs']:>5} {row['calls']:>7} {row['errors']:>6} "
            f"{row['calls_per_s']:>8.1f} {number(row['p50_ms']):>7} {number(row['p99_ms']):>7} "
            f"{number(row['business_ms']):>8} {number(row['wait_ms']):>6} {number(row['held_ms']):>6} "
            f"{number(row['commit_ms']):>6} {number(cap, 0):>6}  {cores_text(row, 13)}"
            + "".join(f"\n    error: {count} x {message}" for message, count in row["error_samples"].items())
        )
    common.table(header, lines, [flagged(row) for row in result["runs"]], "runs")
    print()
    for ratio in result["ratios"]:
        verdict = (
            f"   target ≥ {ratio['target']:g}: {'pass' if ratio['pass'] else 'MISS'}"
            if ratio["target"]
            else ""
        )
        print(
            f"audited / un-audited, {ratio['writers']:>2} writer(s): {ratio['audited_per_s']:.1f} / "
            f"{ratio['unaudited_per_s']:.1f} = {number(ratio['ratio'])}{verdict}"
        )
        if "at_record_ratio" in ratio:
            print(
                f"   (appended at record instead of inside the COMMIT: {ratio['at_record_per_s']:.1f} / "
                f"{ratio['unaudited_per_s']:.1f} = {number(ratio['at_record_ratio'])})"
            )
    for check in result["log_checks"]:
        print(
            f"log after {check['after']}: {log_check_text(check)} ({check['verify_events']} events, "
            f"{check['verify_seconds']:.2f} s); occurred_at goes back {check['time_inversions']} times "
            f"(at most {check['worst_inversion_ms']} ms)"
        )


def print_exports(fills: list[dict], rows: list[dict], baseline: dict) -> None:
    print("\n2. Bulk fill (COPY, chain computed in Python)")
    for fill in (fill for fill in fills if fill["events"]):
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
    print("\n2-3. Export and verification, each a subprocess (peak RSS of that process)")
    lines = [
        f"{row['events']:>9,} {row['task']:<26} {row['seconds']:>8.1f} "
        f"{number(row.get('events_per_s'), 0):>9} {number(row.get('output_mb'), 1):>9} "
        f"{number(row.get('peak_rss_mb'), 1):>11} {number(row.get('cpu_seconds'), 1):>6} "
        f"{number(row.get('server_temp_mb'), 1):>10}  {cores_text(row, 11)}"
        for row in rows
    ]
    common.table(header, lines, [flagged(row) for row in rows], "tasks")
    print(f"baseline: {baseline['task']}: peak RSS {baseline['peak_rss_mb']:.1f} MB")
    sizes = sorted({row["events"] for row in rows})
    if len(sizes) == 2:
        small, big = sizes
        for task in sorted({row["task"] for row in rows if "peak_rss_mb" in row}):
            a, b = (next(r for r in rows if r["events"] == n and r["task"] == task) for n in sizes)
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
        f"\n   the quick canonical check proved {alternative['proven_by_the_quick_check']:,} of "
        f"{breakdown['sample_events']:,} bodies; the others go to {alternative['step']} "
        f"({alternative['us']:.2f} µs per event)"
    )


# Main -------------------------------------------------------------------------------------------------------


OPTIONS = """
--events         1000000  events to export and verify (and a tenth of it)
--writers        16       concurrent writers of the throughput runs
--procs          2        processes the writers are spread over
--seconds        10.0     seconds of each throughput run
--warmup         160      unmeasured calls before each run (all writers)
--no-diagnostic  -        skip the synchronous_commit=off run
--skip-writers   -        only the export and verification parts
--skip-export    -        only the throughput part
--sample         100000   events of the verifier breakdown
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, OPTIONS, ("BENCH_AUDIT_PG_URL", "audit_bench"))
    args = parser.parse_args(argv)
    if args.events < 10 or args.writers < 1 or args.procs < 1 or args.seconds <= 0:
        parser.error("--events must be at least 10, --writers and --procs at least 1, --seconds above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    results: dict = {"meta": common.meta(started, args, "django", "psycopg")}

    def run() -> int:
        database = common.ScratchDatabase(args.pg_url)
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="audit-bench-")))
            key_file = scratch / "audit-signing-key.pem"  # never the one under var/
            env = common.django_env(
                args.pg_url, DJANGO_LOG_LEVEL="WARNING", AUDIT_SIGNING_KEY_FILE=str(key_file)
            )
            os.environ.update(env)
            print(f"== setup: database {database.name}, migrate, signing key in {scratch}")
            database.create()
            stack.callback(database.drop)
            results["meta"]["postgres"] = database.server_version
            import django

            django.setup()
            from django.core.management import call_command

            from audit import signing

            call_command("migrate", interactive=False, verbosity=0)
            signing.generate_key_file(key_file)
            if not args.skip_writers:
                results["writers"] = bench_writers(args, database.name)
            if not args.skip_export:
                results.update(bench_export(args, database, scratch, signing.verifier_key()))
        return 0

    if code := common.run_main(run):
        return code
    if "writers" in results:
        print_writers(results["writers"])
    if "exports" in results:
        print_exports(results["fills"], results["exports"], results["baseline"])
        print_hashing(results["hashing"], results["exports"], results["breakdown"])
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    common.write_results("audit", started, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
