"""Recompute the whole log against its signed checkpoints and name the first thing that is wrong.

No stored value is trusted to have its declared type (SQLite keeps text in a blob column, and whoever owns
the database can change a column's type): a corrupt row is named with its seq and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit import merkle, notes, verify_range, witness
from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
from audit.canonical_check import body_problem, canonical_object
from audit.export import CHUNK
from audit.log import NODE_LEVEL, NODE_SIZE
from audit.models import AuditEvent, AuditHead, Checkpoint, MerkleNode, VerificationRun
from audit.signing import verifier_key


@dataclass
class Result:
    ok: bool
    events: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str = ""
    witnessed: int = 0  # witnessed checkpoints that matched the log (superseded ones aside)


def verify_log(*, verifier: str | None = None, record: bool = True, processes: int | None = None) -> Result:
    """One streaming pass over every event (constant memory); checkpoints and Merkle nodes checked on it.

    A log of PARALLEL_FROM events or more is split into `processes` ranges (default: one per CPU), each
    checked by a process of its own (audit.verify_range) while this one checks the first and then joins
    the Merkle hashes of the others in order. Should any range not be plainly right, the whole log is walked
    again in this process alone, so that the first bad seq and its problem are named exactly as one walk
    names them.
    """
    started = timezone.now()
    verifier = verifier or verifier_key()
    checkpoints, result = _checkpoints(verifier)
    if result is None:
        witnessed, result = _witnessed(verifier)
    if result is None:
        walk = _Walk(checkpoints, witnessed)
        result = walk.run_parallel(processes)
        if result is None:  # one process, or a range that was not plainly right: one walk names the problem
            walk = _Walk(checkpoints, witnessed)
            result = walk.run()
        if result.ok:
            result = walk.finish()
    return _done(started, record, result)


def _witnessed(verifier: str) -> tuple[dict[int, list[witness.Witnessed]], Result | None]:
    """The witnessed checkpoints of the current history by size (those an accepted fork superseded aside)."""
    try:
        superseded = witness.superseded_keys()
        entries = witness.entries(verifier)
    except witness.WitnessUnavailable as exc:
        return {}, Result(False, 0, 0, None, f"witness: {exc}")
    except (OSError, ValueError, KeyError) as exc:
        return {}, Result(False, 0, 0, None, f"witness: cannot be read ({exc})")
    witnessed: dict[int, list[witness.Witnessed]] = {}
    for entry in entries:
        if (entry.size, entry.root_hash) not in superseded:
            witnessed.setdefault(entry.size, []).append(entry)
    return witnessed, None


def _kind(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a real number"
    return type(value).__name__


def _bytes(value) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def _number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checkpoints(verifier: str) -> tuple[dict[int, tuple[bytes, bytes]], Result | None]:
    """(signed root, stored chain hash) of each checkpoint by size, or the first checkpoint that is wrong."""
    checkpoints = {}
    for size, root_hash, chain, note in Checkpoint.objects.order_by("tree_size").values_list(
        "tree_size", "root_hash", "chain_hash", "note"
    ):
        problem = ""
        if not _number(size):
            return {}, Result(False, 0, 0, None, f"checkpoint {size!r}: the tree size is not a number")
        if not isinstance(note, str):
            problem = f"the note is {_kind(note)}, not text"
        elif _bytes(root_hash) is None:
            problem = f"the root hash is {_kind(root_hash)}, not bytes"
        elif _bytes(chain) is None:
            problem = f"the chain hash is {_kind(chain)}, not bytes"
        else:
            try:
                opened = notes.open_checkpoint(note, verifier, origin=settings.AUDIT_LOG_ORIGIN)
            except (notes.NoteError, ValueError) as exc:
                problem = f"signature invalid ({exc})"
            else:
                if opened.size != size or opened.root_hash != _bytes(root_hash):
                    problem = "row differs from its signed note"
        if problem:
            return {}, Result(False, 0, 0, size, f"checkpoint {size}: {problem}")
        checkpoints[size] = (opened.root_hash, _bytes(chain))
    return checkpoints, None


class _Walk:
    """Every event in seq order: its leaf and chain, the Merkle nodes and checkpoint that end at it."""

    def __init__(
        self, checkpoints: dict[int, tuple[bytes, bytes]], witnessed: dict[int, list[witness.Witnessed]]
    ) -> None:
        self.checkpoints = checkpoints
        self.witnessed = witnessed
        self.matched = 0
        self.tree = merkle.CompactRange()
        self.nodes = _StoredNodes()
        self.chain = GENESIS_CHAIN
        self.events = 0
        self.verified = 0

    def run(self, last: int | None = None) -> Result:
        """Every event (up to seq `last`). The common row (well typed, its body proven canonical, its hashes
        matching, no Merkle node or checkpoint ending at it) is checked inline; any other goes through
        `_step`, which checks it all again and names the problem."""
        sha256, push, stops = hashlib.sha256, self.tree.push, set(self.checkpoints) | set(self.witnessed)
        chain, expected = self.chain, self.events + 1
        for seq, body, stored_leaf, stored_chain in _event_rows(last):
            if (
                seq == expected
                and type(seq) is int  # not a bool, a float, a Decimal
                and seq & (NODE_SIZE - 1)  # no stored subtree ends here
                and seq not in stops
                and type(body) is bytes
                and (parsed := canonical_object(body)) is not None
                and parsed.get("seq") == seq
                and type(parsed["seq"]) is int
                and (leaf := sha256(b"\x00" + body).digest()) == stored_leaf
                and (following := sha256(b"\x02" + chain + leaf).digest()) == stored_chain
                and type(stored_leaf) is bytes
                and type(stored_chain) is bytes
            ):
                push(leaf)
                chain, expected = following, expected + 1
                continue
            self.chain, self.events = chain, expected - 1
            bad = self._step(seq, body, stored_leaf, stored_chain)
            if bad is not None:
                return bad
            chain, expected = self.chain, self.events + 1
        self.chain, self.events = chain, expected - 1
        return Result(True, self.events, self.verified, witnessed=self.matched)

    def run_parallel(self, processes: int | None) -> Result | None:
        """The walk split over processes (see verify_log); None when it is not worth it or not conclusive."""
        ranges, database = _ranges(processes), _database()
        if ranges is None or database is None:
            return None
        stops = sorted(size for size in {*self.checkpoints, *self.witnessed} if size > ranges[0][1])
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        workers = []
        try:
            for first, last in ranges[1:]:
                spec = {"table": table, "first": first, "last": last, "page": PAGE, "block": NODE_SIZE}
                spec["stops"] = [size for size in stops if size >= first and (last is None or size <= last)]
                workers.append((_start(database, spec), first))
            result = self.run(last=ranges[0][1])
            if not result.ok:
                return result  # in the first range: every event before it was checked here
            if self.events != ranges[0][1]:
                return None
            for worker, first in workers:
                try:
                    outcome = pickle.loads(worker.stdout.read())
                except (OSError, pickle.UnpicklingError, EOFError, ValueError):
                    return None
                joined = self._join(first, outcome)
                if joined is not True:
                    return joined or None
            return Result(True, self.events, self.verified, witnessed=self.matched)
        except OSError:  # a process could not be started
            return None
        finally:
            for worker, _first in workers:
                if worker.poll() is None:
                    worker.kill()
                worker.wait()
                worker.stdout.close()

    def _join(self, first: int, outcome: tuple) -> Result | bool:
        """A range's Merkle hashes added to the tree, the nodes and checkpoints they end checked: True, or
        the Result naming a node or checkpoint that is wrong, or False when the range's events were not all
        plainly right (the caller walks again)."""
        if outcome[0] != "ok":
            return False
        _ok, before, last, chain, items, chains = outcome
        if before != self.chain or self.events != first - 1:
            return False
        block, append, check = NODE_SIZE, self.tree.append, self.nodes.check
        for item in items:
            if type(item) is bytes:  # the hash of a full block, no checkpoint within it
                end = self.events + block
                self.events = end - 1
                for size, value in ((block, item), *self.tree.append_subtree(block, item)):
                    problem = check(size, end, value)
                    if problem:
                        return self._bad(end, problem)
                self.events = end
                continue
            for leaf in item:
                seq = self.events + 1
                for size, value in append(leaf):
                    problem = check(size, seq, value)
                    if problem:
                        return self._bad(seq, problem)
                self.events = seq
                if seq in chains:
                    self.chain = chains[seq]
                    bad = self._stop(seq)
                    if bad is not None:
                        return bad
        if self.events != last:
            return False
        self.chain = chain
        return True

    def _step(self, seq, body, stored_leaf, stored_chain) -> Result | None:
        expected = self.events + 1
        if not _number(seq):
            return self._bad(
                expected, f"altered: the event after seq {self.events} has seq {seq!r}, not a number"
            )
        if seq != expected:
            return self._bad(expected, f"missing: seq {expected} is not in the log")
        problem = self._event(seq, body, stored_leaf, stored_chain)
        if problem:
            return self._bad(seq, problem)
        self.events = seq
        return self._stop(seq)

    def _stop(self, seq: int) -> Result | None:
        """The signed and witnessed checkpoints of size `seq`, against the tree and the chain at seq."""
        if seq in self.checkpoints:
            root, chain = self.checkpoints[seq]
            if self.tree.root() != root:
                return self._bad(seq, f"altered: the Merkle root at {seq} differs from its signed checkpoint")
            if chain != self.chain:
                return self._bad(seq, f"altered: checkpoint {seq} holds a chain hash not that of seq {seq}")
            self.verified += 1
        for entry in self.witnessed.get(seq, ()):
            if self.tree.root() != entry.root_hash:
                return self._bad(
                    seq, f"forked: the log differs from {entry.describe()}: restored or rewritten"
                )
            self.matched += 1
        return None

    def _event(self, seq: int, body, stored_leaf, stored_chain) -> str:
        for name, value in (("body", body), ("leaf hash", stored_leaf), ("chain hash", stored_chain)):
            if _bytes(value) is None:
                return f"altered: the {name} of seq {seq} is {_kind(value)}, not bytes"
        body = bytes(body)
        problem = body_problem(seq, body)
        if problem:
            return problem
        leaf = leaf_hash(body)
        if leaf != bytes(stored_leaf):
            return f"altered: seq {seq} does not match its leaf hash"
        self.chain = chain_hash(self.chain, leaf)
        if self.chain != bytes(stored_chain):
            return f"altered: the chain breaks at seq {seq}"
        for size, value in self.tree.append(leaf):
            problem = self.nodes.check(size, seq, value)
            if problem:
                return problem
        return ""

    def _bad(self, seq: int | None, problem: str) -> Result:
        return Result(False, self.events, self.verified, seq, problem, self.matched)

    def finish(self) -> Result:
        """What the walk cannot see: rows outside 1..n, the head, checkpoints and nodes past the end."""
        count, following = self.events, self.events + 1
        before = AuditEvent.objects.filter(seq__lt=1).order_by("seq").values_list("seq", flat=True).first()
        if before is not None:
            return self._bad(1, f"altered: an event is stored at seq {before}, before the log's first")
        head = AuditHead.objects.filter(pk=1).values_list("seq", "chain_hash").first()
        if head is None:
            return self._bad(following, "missing: the log's head row is not stored")
        if head[0] != count:
            return self._bad(following, f"missing: the log's head says {head[0]} events, {count} were found")
        if _bytes(head[1]) != self.chain:
            return self._bad(max(count, 1), f"altered: the head's chain hash is not that of seq {count}")
        if self.checkpoints and max(self.checkpoints) > count:
            covered = max(self.checkpoints)
            return self._bad(following, f"missing: a checkpoint covers {covered} events, only {count} remain")
        beyond = [size for size in self.witnessed if size > count]
        if beyond:
            entry = self.witnessed[min(beyond)][0]
            return self._bad(
                following, f"forked: the log holds {count} events, fewer than {entry.describe()}: restored?"
            )
        stray = self.nodes.stray(count)
        if stray:
            return self._bad(*stray)
        return Result(True, count, self.verified, witnessed=self.matched)


PAGE = 10_000
PARALLEL_FROM = 200_000  # events: below this, starting another process costs more than it saves
MAX_PROCESSES = 8  # by default: each holds a database connection


def _ranges(processes: int | None) -> list[tuple[int, int | None]] | None:
    """(first, last) seq of each process's range, split at multiples of NODE_SIZE (the last one open: it
    reads to the end of the log), or None for one process."""
    if processes is None:  # the CPUs this process may use, at most MAX_PROCESSES
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes = min(cpus, MAX_PROCESSES)
    count = AuditHead.objects.filter(pk=1).values_list("seq", flat=True).first()
    if processes < 2 or not _number(count) or count < max(PARALLEL_FROM, NODE_SIZE * processes):
        return None
    bounds = [round(count * part / processes / NODE_SIZE) * NODE_SIZE for part in range(processes)]
    return [(bound + 1, following) for bound, following in zip(bounds, [*bounds[1:], None], strict=True)]


def _start(database: tuple[str, dict], spec: dict) -> subprocess.Popen:
    """A process checking one range (audit.verify_range): a fresh interpreter, which imports neither Django
    nor the caller's main module, its task pickled on its stdin."""
    root = str(Path(verify_range.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(":")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "audit.verify_range"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        worker.stdin.write(pickle.dumps((database, spec)))
        worker.stdin.close()
    except OSError:
        worker.kill()
        worker.wait()
        raise
    return worker


def _database() -> tuple[str, dict] | None:
    """How a process of its own connects to this database: the committed log, as this connection sees it
    outside a transaction (none inside one: rows it has not committed would be missing)."""
    if connection.in_atomic_block:
        return None
    if connection.vendor == "postgresql":
        params = connection.get_connection_params()
        return "postgresql", {k: v for k, v in params.items() if type(v) in (str, int)}
    if connection.vendor == "sqlite" and not connection.is_in_memory_db():
        return "sqlite", {"database": str(connection.settings_dict["NAME"])}
    return None


def _event_rows(last: int | None = None) -> Iterator[tuple]:
    """(seq, body, leaf hash, chain hash) of every event from seq 1 on (to `last`), in seq order, in pages
    keyed on seq.

    Plain SQL on the connection rather than the ORM (whose per-row work cost more than the hashing); on
    PostgreSQL in binary format, so that bytea arrives as bytes, not as hex text to decode, and each page is
    read while the one before is checked. Keyed pages rather than one cursor: outside a transaction a
    server-side cursor is WITH HOLD, which PostgreSQL materialises whole before the first row (see
    audit.export.by_seq); and COPY measured slower, its rows being parsed one by one in Python.
    """
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    sql = verify_range.SQL.format(table=table, upto="" if last is None else " AND seq <= %s")
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        cursor = connection.connection.cursor(binary=True)
        pages = verify_range.ahead(verify_range.pages(cursor, sql, PAGE, 0, last), "audit-verify-reader")
    else:
        pages = verify_range.pages(connection.cursor(), sql, PAGE, 0, last)
    for rows in pages:
        yield from rows


def _node_name(level, index) -> str:
    if _number(level) and _number(index) and 0 <= level <= 62 and index >= 0:
        return f"Merkle node {level}/{index} (seq {(index << level) + 1}-{(index + 1) << level})"
    return f"Merkle node {level!r}/{index!r}"


def _node_rows(level: int) -> Iterator[tuple]:
    """(index, hash) of the stored nodes of one level in index order, read in pages."""
    last = -1
    while True:
        page = list(
            MerkleNode.objects.filter(level=level, index__gt=last)
            .order_by("index")
            .values_list("index", "hash")[:CHUNK]
        )
        yield from page
        if len(page) < CHUNK or not _number(page[-1][0]):
            return
        last = page[-1][0]


class _StoredNodes:
    """The stored Merkle nodes, level by level, compared with each full subtree as the walk completes it.

    Nodes are stored for every full aligned subtree of >= 256 leaves up to the last checkpoint, level by
    level from index 0 (audit.log.extend_nodes): none may differ from its leaves, none may be missing
    before a stored one, none may lie beyond the log.
    """

    def __init__(self) -> None:
        self.rows: dict[int, Iterator[tuple]] = {}
        self.next: dict[int, tuple | None] = {}

    def _peek(self, level: int) -> tuple | None:
        if level not in self.rows:
            self.rows[level] = _node_rows(level)
            self.next[level] = next(self.rows[level], None)
        return self.next[level]

    def check(self, size: int, end: int, value: bytes) -> str:
        """The problem with the stored node of the subtree of `size` leaves that ends at seq `end`, or ''."""
        if size < NODE_SIZE:
            return ""
        level, index = size.bit_length() - 1, end // size - 1
        stored = self._peek(level)
        if stored is None:
            return ""  # not stored (yet): nodes are written up to the last checkpoint
        name = _node_name(level, index)
        if stored[0] != index:
            if _number(stored[0]) and stored[0] > index:
                return f"missing: {name} is not stored, {level}/{stored[0]} is"
            return f"altered: {_node_name(level, stored[0])} is out of place"
        self.next[level] = next(self.rows[level], None)
        if _bytes(stored[1]) is None:
            return f"altered: {name} holds {_kind(stored[1])}, not a hash"
        if bytes(stored[1]) != value:
            return f"altered: {name} differs from the hash of its leaves"
        return ""

    def stray(self, count: int) -> tuple[int, str] | None:
        """(first bad seq, problem) for a stored node that no subtree of the log's `count` events matched."""
        for level in sorted(self.rows):
            if self.next[level] is not None:
                return self._stray(count, level, self.next[level][0])
        other = (
            MerkleNode.objects.exclude(level__in=list(self.rows))
            .order_by("level", "index")
            .values_list("level", "index")
            .first()
        )
        return None if other is None else self._stray(count, *other)

    @staticmethod
    def _stray(count: int, level, index) -> tuple[int, str]:
        name = _node_name(level, index)
        if not (_number(level) and _number(index) and 0 <= level <= 62 and index >= 0):
            return count + 1, f"altered: {name} is not a position in a tree"
        end = min((index + 1) << level, count + 1)
        if level < NODE_LEVEL:
            return end, f"altered: {name} is below the stored levels"
        return end, f"altered: {name} lies beyond the log's {count} events"


def _done(started, record: bool, result: Result) -> Result:
    if record:
        VerificationRun.objects.create(
            started_at=started,
            ok=result.ok,
            events=result.events,
            checkpoints=result.checkpoints,
            first_bad_seq=result.first_bad_seq,
            problem=result.problem,
        )
    return result
