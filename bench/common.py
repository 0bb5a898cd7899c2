"""What the benchmark scripts share: the scratch database and server, statistics, CPU accounting, client
processes and the results file. Imported by bench/registry.py, bench/audit.py and bench/pages.py."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from queue import Empty
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# bench/audit.py and bench/registry.py would shadow the Django apps of the same names: the project root
# comes first, bench/ last (spawned processes inherit sys.path).
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() not in (ROOT, BENCH_DIR))]
sys.path.append(str(BENCH_DIR))

HOST = "127.0.0.1"
DISTURBED_CORES = 0.15  # cores used by other processes during a run above which its figures are flagged
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(Exception):
    """The bench could not set up or run; the message says what failed."""


# The scratch database and the results file --------------------------------------------------------------


class ScratchDatabase:
    """Dropped and created again on create(), dropped on drop(); its name must contain "bench", a guard
    against pointing a benchmark at a database that matters."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url, self.name = url, parts.path.lstrip("/")
        if "bench" not in self.name:
            raise BenchError(f"refusing to drop and recreate {self.name!r}: the name must contain 'bench'")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.server_version = ""

    def _admin(self, statement: str) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                version = conn.info.server_version  # 150020 is 15.20
                self.server_version = f"{version // 10000}.{version % 10000}"
                conn.execute(sql.SQL(statement).format(sql.Identifier(self.name)))
        except psycopg.OperationalError as exc:
            raise BenchError(
                f"PostgreSQL at {self.admin_url} is not reachable ({exc}); see --pg-url"
            ) from exc

    def create(self) -> str:
        self.drop()
        self._admin("CREATE DATABASE {}")
        return self.url

    def drop(self) -> None:
        if "django.db" in sys.modules:  # this process's own connections first
            from django.db import connections

            with contextlib.suppress(Exception):
                connections.close_all()
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def meta(started: dt.datetime, args, *packages: str) -> dict:
    """The facts every results file records: time, commit ("+dirty" with changes), versions, options."""

    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    try:
        revision = git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain") else "")
    except OSError:
        revision = "unknown"
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "git": revision,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **{package: version_of(package) for package in packages},
        "args": {key: value for key, value in vars(args).items() if key != "pg_url"},
    }


def write_results(name: str, started: dt.datetime, data: dict) -> None:
    path = BENCH_DIR / "results" / f"{name}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\nResults written to {path.relative_to(ROOT)}")


def run_main(body) -> int:
    """Run body(); a plain `kill` cleans up like Ctrl-C (the callers' finally blocks and ExitStacks)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return body()
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped, scratch database and temporary files removed", file=sys.stderr)
        return 130


def parser(doc: str, options: str, pg: tuple[str, str]) -> argparse.ArgumentParser:
    """Options from a table, a line each: name, default, help, separated by two spaces or more. The default
    gives the type: a number, a string, "a|b" (choices, the first by default) or "-" (a flag; --no-x sets
    x to False). pg: the environment variable and the default name of the scratch database."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    url = os.environ.get(pg[0], f"postgres://postgres@127.0.0.1:5432/{pg[1]}")
    parser.add_argument(
        "--pg-url", default=url, help=f"the scratch database (${pg[0]}); DROPPED and created again"
    )
    for line in filter(None, (line.strip() for line in options.splitlines())):
        name, default, text = re.split(r"\s{2,}", line, maxsplit=2)
        if default == "-":
            flag = name.startswith("--no-")
            dest = name[5:] if flag else name[2:]
            parser.add_argument(
                name, dest=dest.replace("-", "_"), action="store_" + str(not flag).lower(), help=text
            )
        elif "|" in default:
            parser.add_argument(name, choices=default.split("|"), default=default.split("|")[0], help=text)
        else:
            kind = (
                int if re.fullmatch(r"\d+", default) else float if re.fullmatch(r"[\d.]+", default) else str
            )
            parser.add_argument(name, type=kind, default=kind(default), help=text)
    return parser


# Statistics and formatting -------------------------------------------------------------------------------


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else None


def ms(seconds: float | None, digits: int = 3) -> float | None:
    return None if seconds is None else round(seconds * 1000, digits)


def latency_summary(seconds: list[float], *pcts: int, digits: int = 3) -> dict:
    """mean, the percentiles asked for and max of a list of durations in seconds, in ms."""
    ordered = sorted(seconds)
    out = {"mean_ms": ms(sum(ordered) / len(ordered), digits) if ordered else None}
    out |= {f"p{pct}_ms": ms(percentile(ordered, pct), digits) for pct in pcts}
    return out | {"max_ms": ms(ordered[-1], digits) if ordered else None}


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def merge_errors(parts: list[dict], key: str = "errors") -> Counter:
    errors: Counter = Counter()
    for part in parts:
        errors.update(part[key])
    return errors


def table(header: str, rows: list[str], flags: list[bool], what: str) -> None:
    """A table with a rule under its header; rows whose run others disturbed are marked and explained."""
    print(header + "\n" + "-" * len(header))
    for row, flag in zip(rows, flags, strict=True):
        print(row + ("  <- disturbed" if flag else ""))
    if any(flags):
        print(
            f"Other processes (or the host) took {DISTURBED_CORES:g}+ cores during the {what} marked: their"
            " figures describe a busy machine, not the app. Run again on a quiet machine."
        )


# CPU accounting (Linux /proc; nothing elsewhere) ---------------------------------------------------------


def cpu_snapshot() -> dict | None:
    """CPU seconds used so far by the machine (busy, steal) and by every process, keyed by (pid, start
    time) so that a reused pid is not mistaken for its predecessor; None without /proc."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    processes = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # the process ended meanwhile
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
            processes[int(entry.name), fields[19]] = (int(fields[2]), command, seconds)  # pgid, cmd, cpu
    busy = sum(ticks[:3]) / CLOCK_TICKS  # user + nice + system
    steal = (ticks[7] if len(ticks) > 7 else 0) / CLOCK_TICKS
    return {"at": time.perf_counter(), "busy": busy, "steal": steal, "processes": processes}


class CpuMeter:
    """A snapshot at start and at stop, and samples in between: a process that ends during the run (a
    database connection closed, a subprocess done) counts with its last reading."""

    def __init__(self, interval: float = 1.0):
        self.before = cpu_snapshot()
        self.seen = dict(self.before["processes"]) if self.before else {}
        self.done, self.interval = threading.Event(), interval
        self.thread = threading.Thread(target=self._sample, daemon=True)
        if self.before:
            self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(self.interval):
            self.seen.update(cpu_snapshot()["processes"])

    def stop(self, owner) -> dict:
        """Where the CPU went: {"seconds": {part: s}, "other", "steal", "wall"}; owner(pid, pgid, command)
        names the part of the bench a process belongs to (None: another process)."""
        self.done.set()
        if not self.before:
            return {}
        self.thread.join()
        after = cpu_snapshot()
        after["processes"] = {**self.seen, **after["processes"]}
        spent: Counter = Counter()
        for key, (pgid, command, seconds) in after["processes"].items():
            part = owner(key[0], pgid, command)
            if part:
                previous = self.before["processes"].get(key)
                spent[part] += seconds - (previous[2] if previous else 0)
        return {
            "seconds": dict(spent),
            "other": max(0.0, after["busy"] - self.before["busy"] - sum(spent.values())),
            "steal": after["steal"] - self.before["steal"],
            "wall": after["at"] - self.before["at"],
        }


def postgres_owner(database: str, background: bool = True):
    """A part of owner(): this database's PostgreSQL backends ("postgres: user name 127.0.0.1(port) idle")
    and, with background, the server's shared writers (walwriter, checkpointer ...: no client address)."""

    def owner(pid: int, pgid: int, command: str) -> str | None:
        if not command.startswith("postgres: "):
            return None
        shared = background and "(" not in command and "worker" not in command
        return "database" if f" {database} " in command or shared else None

    return owner


def cores(usage: dict, *parts: str) -> dict:
    """Cores used by each part, by other processes and stolen by the host, from CpuMeter.stop()."""
    if not usage:
        return {}
    wall = usage["wall"]
    out = {f"{part}_cores": round(usage["seconds"].get(part, 0.0) / wall, 2) for part in parts}
    return out | {
        "other_cores": round(usage["other"] / wall, 2),
        "steal_cores": round(usage["steal"] / wall, 2),
    }


# Clients in several processes ----------------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _process(thread_fn, setup, spec: dict, items: list, ready_queue, start, results, leave) -> None:
    """One client process: setup(spec) once, then a thread per item; reports when they are warmed up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    context = setup(spec) if setup else None
    go, out = threading.Event(), []
    ready = threading.Barrier(len(items) + 1)

    def run(item) -> None:
        out.append(thread_fn(spec, item, context, ready, go))

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    ready.wait()
    ready_queue.put(os.getpid())
    start.wait()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    results.put({"threads": out, "elapsed": time.perf_counter() - started})
    leave.wait(120)  # stay until the parent has read the CPU of our database connections


def _receive(queue, workers: list, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Empty):
            return queue.get(timeout=0.5)
        dead = [worker.exitcode for worker in workers if worker.exitcode not in (None, 0)]
        if dead:
            raise BenchError(f"a client process died (exit code {dead[0]})")
    raise BenchError(f"the client processes did not answer within {timeout:.0f} s")


def run_clients(thread_fn, groups: list[list], spec: dict, timeout: float, owner=None, setup=None):
    """Run thread_fn(spec, item, context, ready, go) -> stats for every item, one thread each, a spawned
    process per group. Each thread warms up, waits on ready (also when the warm-up failed), starts on go.
    Returns the threads' stats, the seconds from go to the last thread's end, and the CpuMeter usage
    ("client": the client processes)."""
    ctx = multiprocessing.get_context("spawn")
    ready_queue, results, start, leave = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    args = (ready_queue, start, results, leave)
    workers = [
        ctx.Process(target=_process, args=(thread_fn, setup, spec, group, *args), daemon=True)
        for group in groups
    ]
    try:
        for worker in workers:
            worker.start()
        pids = {worker.pid for worker in workers}
        for _ in workers:
            _receive(ready_queue, workers, 300)
        meter = CpuMeter()
        start.set()
        parts = [_receive(results, workers, timeout) for _ in workers]
        usage = meter.stop(lambda pid, *rest: "client" if pid in pids else owner and owner(pid, *rest))
    finally:
        leave.set()
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
    return [stats for part in parts for stats in part["threads"]], max(p["elapsed"] for p in parts), usage


# Django and gunicorn in subprocesses ---------------------------------------------------------------------


# Production settings need a witness directory for signed checkpoints; a benchmark run gets its own, one per
# database (an empty witness accepts any log; an old one would not match a database made afresh).
_witness_dirs: dict[str, str] = {}


def django_env(database_url: str, **extra: str) -> dict:
    witness = os.environ.get("AUDIT_WITNESS_DIR") or _witness_dirs.setdefault(
        database_url, tempfile.mkdtemp(prefix="bench-witness-")
    )
    return {
        "AUDIT_WITNESS_DIR": witness,
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "AUDIT_SIGNING_KEY_AUTOCREATE": "true",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise BenchError(
            f"manage.py {' '.join(args)[:60]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return done.stdout


def call(port: int, headers: dict, method: str, path: str, payload: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


class Gunicorn:
    """`gunicorn config.wsgi` (or `app`) on a free loopback port, in its own process group; stop() ends it
    all."""

    def __init__(self, env: dict, log_path: Path, *options: str, app: str = "config.wsgi"):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        command = [sys.executable, "-m", "gunicorn", app, "-b", f"{HOST}:{self.port}", *options]
        self.log_path, self.log = log_path, log_path.open("w")
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
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=wait)
        self.log.close()


# Audit events written in bulk -----------------------------------------------------------------------------


def event_columns() -> list[str]:
    """The columns of audit_auditevent that event_row() fills, in its order (the id is the database's)."""
    from audit.models import AuditEvent

    return [field.column for field in AuditEvent._meta.concrete_fields if not field.primary_key]


def event_row(columns: dict, previous_chain: bytes) -> tuple:
    """An audit_auditevent row for COPY (event_columns()) from its columns, the body built by the app's own
    audit.services.event_body, with its leaf and chain hashes."""
    from audit.canonical import chain_hash, leaf_hash
    from audit.services import event_body

    body = event_body(columns)
    leaf = leaf_hash(body)
    row = {**columns, "changes": json.dumps(columns["changes"]), "context": json.dumps(columns["context"])}
    row |= {"body": body, "leaf_hash": leaf, "chain_hash": chain_hash(previous_chain, leaf)}
    return tuple(row[name] for name in event_columns())
