"""One range of the log checked in a process of its own, for audit.verification's parallel walk.

Free of Django, so that a spawned process starts in a fraction of a second: it opens its own database
connection (psycopg or sqlite3) from the parameters it is given. For every event of its range it checks
what the sequential walk checks of an event (its seq follows the one before, the columns are bytes, the body
is canonical and states its seq, the leaf hash, the chain link from the stored chain hash of the event before
the range); the caller then checks that this stored chain hash is the one it computed. It sends back the
Merkle hashes of its range, one per full block of `block` leaves (the leaves themselves for a block that holds
a checkpoint or a witnessed size, and for the last, partial one), and the chain hash at each such size. At
the first event that is not plainly right it stops and says so: the caller then walks the whole log again
in one process, so that failures are named exactly as the sequential walk names them.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import sys
import threading
from collections.abc import Iterator
from queue import Empty, Queue

from audit import merkle
from audit.canonical_check import body_problem, canonical_object

SQL = "SELECT seq, body, leaf_hash, chain_hash FROM {table} WHERE seq > %s{upto} ORDER BY seq LIMIT %s"


def pages(cursor, sql: str, page: int, after: int = 0, last: int | None = None) -> Iterator[list]:
    """The rows of `sql` in pages keyed on seq (the first column): after seq `after`, up to seq `last`."""
    with contextlib.closing(cursor):
        while True:
            cursor.execute(sql, (after, page) if last is None else (after, last, page))
            rows = cursor.fetchall()
            yield rows
            seq = rows[-1][0] if rows else None
            if len(rows) < page or not (isinstance(seq, int) and not isinstance(seq, bool)):
                return
            after = seq


def ahead(source: Iterator[list], name: str) -> Iterator[list]:
    """The pages, each read by a thread while the caller checks the one before (psycopg waits for the server
    without holding the GIL). psycopg connections may be shared by threads, one cursor each: the caller's own
    queries (the Merkle nodes) wait for the connection's lock."""
    queue: Queue = Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for rows in source:
                if stop.is_set():
                    break
                queue.put(rows)
        except BaseException as exc:  # handed to the caller, raised there
            queue.put(exc)
        else:
            queue.put(None)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a put, so that it sees `stop`
            with contextlib.suppress(Empty):
                queue.get(timeout=0.05)
        reader.join()


def main() -> None:
    """Process entry (`python -m audit.verify_range`): (database, spec) pickled on stdin, the outcome of
    `check` pickled on stdout."""
    database, spec = pickle.load(sys.stdin.buffer)
    try:
        outcome = _check(database, **spec)
    except BaseException as exc:  # the caller falls back to the sequential walk
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    pickle.dump(outcome, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.flush()


def _connect(database: tuple[str, dict]):
    vendor, params = database
    if vendor == "postgresql":
        import psycopg

        connection = psycopg.connect(**params, autocommit=True)
        return connection, connection.cursor(binary=True)
    import sqlite3

    connection = sqlite3.connect(params["database"], uri=params.get("uri", False))
    return connection, connection.cursor()


def _check(
    database, *, table: str, first: int, last: int | None, page: int, block: int, stops: list[int]
) -> tuple:
    """('ok', chain before the range, last seq, chain at the end, Merkle items, chains at the stops) or
    ('stop', seq, why)."""
    connection, cursor = _connect(database)
    postgres = database[0] == "postgresql"
    mark = "%s" if postgres else "?"
    with contextlib.closing(connection):
        with contextlib.closing(cursor):
            cursor.execute(f"SELECT chain_hash FROM {table} WHERE seq = {mark}", (first - 1,))
            before = cursor.fetchall()
        if len(before) != 1 or type(before[0][0]) is not bytes:
            return ("stop", first - 1, "the event before the range is not plainly stored")
        sql = SQL.format(table=table, upto="" if last is None else " AND seq <= %s").replace("%s", mark)
        if postgres:  # bytea as bytes, not hex text; each page read while the one before is checked
            rows = ahead(
                pages(connection.cursor(binary=True), sql, page, first - 1, last), "audit-range-reader"
            )
        else:
            rows = pages(connection.cursor(), sql, page, first - 1, last)
        with contextlib.closing(rows):  # its cursor before the connection
            return _walk(rows, before[0][0], first, last, block, stops)


def _walk(
    rows_in_pages: Iterator[list], chain: bytes, first: int, last: int | None, block: int, stops: list[int]
):
    sha256, root = hashlib.sha256, merkle.root
    start_chain, expected, leaves, items, chains = chain, first, [], [], {}
    stopped = {-(-stop // block) * block for stop in stops}  # ends of the blocks that hold a stop
    stop_set = set(stops)
    for rows in rows_in_pages:
        for seq, body, stored_leaf, stored_chain in rows:
            if not (
                seq == expected
                and type(seq) is int
                and type(body) is bytes
                and (parsed := canonical_object(body)) is not None
                and parsed.get("seq") == seq
                and type(parsed["seq"]) is int
                and (leaf := sha256(b"\x00" + body).digest()) == stored_leaf
                and (following := sha256(b"\x02" + chain + leaf).digest()) == stored_chain
                and type(stored_leaf) is bytes
                and type(stored_chain) is bytes
            ):
                if type(seq) is not int or seq != expected:
                    return ("stop", expected, "a row out of place")
                if not all(type(value) is bytes for value in (body, stored_leaf, stored_chain)):
                    return ("stop", seq, "a column is not bytes")
                if body_problem(seq, body):
                    return ("stop", seq, "the body")
                leaf = sha256(b"\x00" + body).digest()
                following = sha256(b"\x02" + chain + leaf).digest()
                if leaf != stored_leaf or following != stored_chain:
                    return ("stop", seq, "a hash")
            chain, expected = following, expected + 1
            leaves.append(leaf)
            if seq in stop_set:
                chains[seq] = chain
            if not seq % block:
                items.append(leaves if seq in stopped else root(leaves))
                leaves = []
    if last is not None and expected != last + 1:
        return ("stop", expected, "the range ends early")
    if leaves:
        items.append(leaves)
    return ("ok", start_chain, expected - 1, chain, items, chains)


if __name__ == "__main__":
    main()
