#!/usr/bin/env python
"""Outbound deliveries: events delivered per second by ONE Celery worker, and the latency from the change's
commit to the receiver getting it, on the real stack (gunicorn, the worker and beat, PostgreSQL, Redis).

The stack is tests/stack.py's: a scratch database, a redis-server of its own on a free loopback port, the
production settings. A receiver on 127.0.0.1 records when each delivery arrives. Two modes:

- webhooks (when POST /api/v1/webhooks exists): --fanout subscriptions to one model, then a promotion
  journey through the API (requested, approved, approved and applied: 4 events); each event fans out to every
  subscription. The commit time of an event is when its API call answered (the commit comes just before).
- outbox (fallback, without the webhooks app): each event is --fanout outbox messages written in one
  transaction and enqueued when it commits, as a subscription's fan-out does; its commit time is taken in
  that process right after the commit.

Each event is delivered completely before the next one; events/s is deliveries / the time from commit to the
last delivery, summed over the events. The ceiling, measured in the same run, is the receiver's own rate
for plain POSTs from a loop in this process (a new connection each, as the worker makes).

    .venv/bin/python bench/deliveries.py                     # ~40 s
    .venv/bin/python bench/deliveries.py --fanout 20 --events 2
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/
import common
from common import BenchError

OPTIONS = """
--fanout    100   deliveries per event: subscriptions (webhooks) or outbox messages (fallback)
--events    4     events (the webhooks mode always makes the 4 of one promotion)
--ceiling   3.0   seconds of plain POSTs for the receiver's ceiling
--timeout   60.0  seconds to wait for one event's deliveries
"""

# Run in a Django process of the stack (fallback mode): one transaction writes the messages, enqueued on
# commit as outbox_callback does; prints the time of the commit (the first on-commit hook).
FANOUT_SCRIPT = """
import time
from django.db import transaction
from django.utils import timezone
from approvals.models import OutboxMessage
from approvals.tasks import enqueue
committed = []
with transaction.atomic():
    transaction.on_commit(lambda: committed.append(time.time()))
    for i in range({fanout}):
        message = OutboxMessage.objects.create(
            webhook_id=f"msg_bench_{event}_{{i}}", event_type="promotion.applied", url="{url}",
            payload=b'{{"type": "promotion.applied", "data": {{"id": {event}}}}}',
            label=f"bench message {{i}}", next_attempt_at=timezone.now(),
        )
        transaction.on_commit(lambda pk=message.pk: enqueue(pk))
print(committed[0])
"""


# The events of a promotion journey (not "*": every subscription created would be an event to the others).
PROMOTION_EVENTS = ["promotion.requested", "promotion.approved", "promotion.applied"]


class Receiver:
    """A loopback HTTP receiver answering 204, recording (arrival time, webhook-id) of every POST."""

    def __init__(self):
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.arrivals.append((time.time(), self.headers.get("webhook-id", "")))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((common.HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://{common.HOST}:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def since(self, start: int) -> list[tuple[float, str]]:
        with self.lock:
            return self.arrivals[start:]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ceiling(receiver: Receiver, seconds: float) -> float:
    """Plain POSTs per second to the receiver from one loop (a connection each), none of the registry."""
    body = json.dumps({"type": "promotion.applied", "data": {"id": 1}}).encode()
    done, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        conn = http.client.HTTPConnection(common.HOST, receiver.port, timeout=10)
        conn.request("POST", "/hook", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
        done += 1
    return done / (time.monotonic() - start)


def wait_count(receiver: Receiver, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while receiver.count() < target:
        if time.monotonic() > deadline:
            raise BenchError(f"{receiver.count()} of {target} deliveries within {timeout:.0f} s")
        time.sleep(0.005)


def webhooks_events(stack, receiver: Receiver, args) -> list[tuple[float, int]] | None:
    """The promotion journey's 4 events, each delivered to --fanout subscriptions: (commit time, first
    arrival index) per event; None when the webhooks API is absent."""
    world, asset = stack.world, stack.world["assets"][0]
    for index in range(args.fanout):
        body = {"url": receiver.url, "events": PROMOTION_EVENTS, "asset": f"model/{asset}"}
        status, answer = stack.api("POST", "webhooks", world["admin"], body)
        if status == 404 and index == 0:
            return None
        if status != 201:
            raise BenchError(f"POST /api/v1/webhooks answered {status}: {answer}")
    promotion = {"kind": "model", "name": asset, "version": 2, "stage": "production", "justification": "b"}
    first, second = world["reviewers"]
    steps = [
        ("promotions", world["ci"], promotion, 201),
        (None, first, {"comment": "ok"}, 200),
        (None, second, {"comment": "ok"}, 200),  # approved and, by the policy, applied: 2 events
    ]
    events, promotion_id = [], None
    for path, token, body, expected in steps:
        start = receiver.count()
        status, answer = stack.api("POST", path or f"promotions/{promotion_id}/approve", token, body)
        committed = time.time()
        if status != expected:
            raise BenchError(f"{path} answered {status}: {answer}")
        promotion_id = promotion_id or answer["id"]
        fired = 2 if path is None and token is second else 1
        wait_count(receiver, start + fired * args.fanout, args.timeout)
        events.extend([(committed, start)] * fired)
    return events


def outbox_events(stack, receiver: Receiver, args) -> list[tuple[float, int]]:
    events = []
    for event in range(args.events):
        start = receiver.count()
        script = FANOUT_SCRIPT.format(fanout=args.fanout, event=event, url=receiver.url)
        committed = float(stack.python(script).split()[-1])
        wait_count(receiver, start + args.fanout, args.timeout)
        events.append((committed, start))
    return events


def measure(receiver: Receiver, events: list[tuple[float, int]], fanout: int) -> dict:
    """Latency of every delivery from its event's commit; events/s over the events' busy time. An event
    counted twice (two events of one commit) shares its start and its arrivals."""
    latencies, busy, delivered = [], 0.0, 0
    for committed, start in dict.fromkeys(events):
        share = events.count((committed, start)) * fanout
        arrivals = receiver.since(start)[:share]
        latencies += [at - committed for at, _ in arrivals]
        busy += max(at for at, _ in arrivals) - committed
        delivered += len(arrivals)
    return {
        "deliveries": delivered,
        "per_s": delivered / busy,
        **common.latency_summary(latencies, 50, 99),
    }


def owner(stack, database: str):
    """Whose CPU a process's is: the stack's (gunicorn, the worker, beat, Redis, this bench and its Django
    processes), this database's PostgreSQL backends, or another's (None)."""
    ours = {process.pid for process in stack.processes.values()} | {os.getpgid(0)}
    in_database = common.postgres_owner(database)

    def owner(pid: int, pgid: int, command: str) -> str | None:
        if pgid in ours or (stack.redis.process and pid == stack.redis.process.pid):
            return "stack"
        return in_database(pid, pgid, command)

    return owner


def breakdown(stack) -> dict:
    """Where a delivery's time goes: the POST itself (the attempt log's latency) and the whole task (the
    worker's "succeeded in" lines), medians in ms."""
    posts = sorted(row[0] for row in stack.query("SELECT latency_ms FROM approvals_outboxattempt"))
    tasks = sorted(
        float(seconds)
        for seconds in re.findall(r"deliver_outbox\[[^]]+\] succeeded in ([\d.]+)s", stack.log("worker"))
    )
    return {
        "post_p50_ms": common.percentile(posts, 50),
        "task_p50_ms": common.ms(common.percentile(tasks, 50), 1),
        "tasks": len(tasks),
    }


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__, OPTIONS, ("BENCH_DELIVERIES_PG_URL", "deliveries_bench")).parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    meta = common.meta(started, args, "django", "celery", "redis")
    result: dict = {}

    def run() -> int:
        from tests.stack import RedisServer, Stack

        if shutil.which("redis-server") is None:
            raise BenchError("redis-server is not installed")
        with contextlib.ExitStack() as cleanup:
            database = common.ScratchDatabase(args.pg_url)
            url = database.create()
            cleanup.callback(database.drop)
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="deliveries-bench-")))
            redis = RedisServer(workdir)
            redis.start()
            cleanup.callback(redis.stop)
            # The production sweep and retry intervals: every delivery here succeeds at once.
            stack = Stack(workdir, url, redis, DJANGO_OUTBOX_SWEEP_SECONDS="60")
            stack.env.pop("DJANGO_OUTBOX_FIRST_RETRY_SECONDS")
            cleanup.callback(stack.stop)
            print("starting gunicorn, one Celery worker (concurrency 1) and beat …", flush=True)
            stack.start(assets=1)
            receiver = Receiver()
            cleanup.callback(receiver.close)
            result["ceiling_per_s"] = ceiling(receiver, args.ceiling)
            base = receiver.count()
            meter = common.CpuMeter()
            events = webhooks_events(stack, receiver, args)
            result["mode"] = "webhooks" if events is not None else "outbox"
            if events is None:
                events = outbox_events(stack, receiver, args)
            result["cpu"] = common.cores(meter.stop(owner(stack, database.name)), "stack", "database")
            result.update(measure(receiver, [(c, s) for c, s in events if s >= base], args.fanout))
            result.update(breakdown(stack))
            result["events"], result["fanout"] = len(events), args.fanout
        return 0

    if code := common.run_main(run):
        return code
    label = {
        "webhooks": "webhook subscriptions, a promotion's 4 events",
        "outbox": "FALLBACK without the webhooks app: outbox messages written in one transaction per event",
    }[result["mode"]]
    print(f"\n{label}: {result['events']} events x {result['fanout']}, one worker\n")
    header = f"{'deliveries':>10} {'per s':>8} {'ceiling/s':>10} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8}"
    common.table(
        header,
        [
            f"{result['deliveries']:>10} {result['per_s']:>8.1f} {result['ceiling_per_s']:>10.1f}"
            f" {result['per_s'] / result['ceiling_per_s']:>6.3f} {common.number(result['p50_ms'], 1):>8}"
            f" {common.number(result['p99_ms'], 1):>8}"
        ],
        [result["cpu"].get("other_cores", 0) >= common.DISTURBED_CORES],
        "run",
    )
    print(
        "cores during the deliveries: stack {stack_cores}, database {database_cores}, other processes"
        " {other_cores}, stolen {steal_cores}".format(**result["cpu"])
    )
    print(
        f"\nper delivery (medians): the POST {common.number(result['post_p50_ms'], 0)} ms, the whole task"
        f" {common.number(result['task_p50_ms'], 1)} ms ({result['tasks']} tasks); the rest of 1/(per s) is"
        " the broker and the worker's own work between tasks"
    )
    common.write_results("deliveries", started, {"meta": meta, "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
