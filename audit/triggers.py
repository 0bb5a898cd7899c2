"""Database triggers that refuse every write to the audit tables but the append path (installed by migration).

- Events, checkpoints, Merkle nodes and verification runs: UPDATE, DELETE and TRUNCATE are refused, and so
  are the forms of INSERT that overwrite a row: SQLite's INSERT OR REPLACE / REPLACE (which deletes the
  conflicting row without firing a DELETE trigger, so an insert that meets an existing row on any unique
  key is refused) and INSERT ... ON CONFLICT DO UPDATE (its update is refused by the UPDATE trigger).
- An event is inserted after the head (its seq is above the head's).
- The head is inserted once, empty (seq 0, a zero chain hash, into an empty table), and never deleted. An
  update moves it one event forward to an event that is already stored: seq = old seq + 1 and chain_hash
  = the chain hash of the event at that seq (or rewrites the same values, which changes nothing).
  audit_record inserts the event, then moves the head.
- A checkpoint is inserted for a stored event: 1 <= tree_size <= the head's seq, and its chain_hash is that
  of the event at tree_size (the signature over its root is for verification to check).
- A Merkle node is inserted for a position that is not stored yet, next after its level's last node, and
  within the log (every leaf of its subtree is at or before the head).

Whoever owns the database can remove the triggers; that is caught by verification against signed
checkpoints kept elsewhere.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured

from audit.log import NODE_LEVEL

# Append-only tables and their unique keys (column tuples): on SQLite an INSERT that meets an existing row on
# any of them is refused, since INSERT OR REPLACE would delete that row. tests/audit/test_append_only.py
# checks that this lists every audit table and every unique key of audit/models.py.
APPEND_ONLY = {
    "audit_auditevent": [("id",), ("seq",)],
    "audit_checkpoint": [("id",), ("tree_size",)],
    "audit_merklenode": [("id",), ("level", "index")],
    "audit_verificationrun": [("id",)],
}
HEAD = "audit_audithead"
EVENTS = "audit_auditevent"
NODES = "audit_merklenode"
CHECKPOINTS = "audit_checkpoint"
MAX_NODE_LEVEL = 62  # seq is a signed 64-bit integer: no log reaches a subtree of 2**63 leaves
# Every trigger name suffix ever installed, so that remove() also clears older sets.
SUFFIXES = (
    "no_change",
    "no_truncate",
    "no_update",
    "no_delete",
    "no_replace",
    "forward",
    "once",
    "at_head",
    "at_event",
    "next",
)

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION audit_head_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {HEAD}) OR NEW.seq IS DISTINCT FROM 0
            OR NEW.chain_hash IS DISTINCT FROM decode(repeat('00', 32), 'hex') THEN
        RAISE EXCEPTION 'audit log is append-only: the head is inserted once, empty'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = OLD.id AND NEW.seq = OLD.seq AND NEW.chain_hash = OLD.chain_hash THEN
        RETURN NEW;  -- rewriting the same values changes nothing (the test suite's fixtures reload the row)
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq + 1 THEN
        RAISE EXCEPTION 'audit log head moves forward one event at a time (% -> %)', OLD.seq, NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {EVENTS} WHERE seq = NEW.seq AND chain_hash = NEW.chain_hash) THEN
        RAISE EXCEPTION 'audit log head moves forward only to a stored event: no seq % with that chain hash',
            NEW.seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION audit_event_at_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT coalesce(NEW.seq > (SELECT seq FROM {HEAD} WHERE id = 1), false) THEN
        RAISE EXCEPTION 'audit log is append-only: seq % is not after the head', NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION audit_checkpoint_at_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT coalesce(NEW.tree_size >= 1 AND NEW.tree_size <= (SELECT seq FROM {HEAD} WHERE id = 1), false)
            OR NOT EXISTS (
                SELECT 1 FROM {EVENTS} WHERE seq = NEW.tree_size AND chain_hash = NEW.chain_hash) THEN
        RAISE EXCEPTION 'audit log is append-only: a checkpoint at % is for a stored event, with its hash',
            NEW.tree_size USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION audit_merkle_node_next() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head bigint := (SELECT seq FROM {HEAD} WHERE id = 1);
BEGIN
    -- Checked in steps: the shift is only defined for levels that fit in 64 bits.
    IF head IS NULL OR NEW.level IS NULL OR NEW.index IS NULL
            OR NEW.level < {NODE_LEVEL} OR NEW.level > {MAX_NODE_LEVEL} OR NEW.index < 0 THEN
        RAISE EXCEPTION 'audit log is append-only: no Merkle node is stored at %/%', NEW.level, NEW.index
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.index >= (head >> NEW.level::int) THEN
        RAISE EXCEPTION 'audit log is append-only: Merkle node %/% lies beyond the head', NEW.level, NEW.index
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.index > 0 AND NOT EXISTS (
            SELECT 1 FROM {NODES} WHERE level = NEW.level AND "index" = NEW.index - 1) THEN
        RAISE EXCEPTION 'audit log is append-only: Merkle node %/% is not the next at its level',
            NEW.level, NEW.index USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
"""


def _pg_trigger(table: str, suffix: str, when: str, function: str, level: str = "ROW") -> list[str]:
    return [
        f"CREATE TRIGGER {table}_{suffix} {when} ON {table} FOR EACH {level} EXECUTE FUNCTION {function}()",
        # ALWAYS: the triggers fire even with session_replication_role = replica.
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{suffix}",
    ]


def _pg_statements() -> list[str]:
    statements = []
    for table in APPEND_ONLY:
        # An UPSERT's DO UPDATE fires the BEFORE UPDATE trigger, so it is refused here too.
        statements += _pg_trigger(table, "no_change", "BEFORE UPDATE OR DELETE", "audit_append_only")
        statements += _pg_trigger(table, "no_truncate", "BEFORE TRUNCATE", "audit_append_only", "STATEMENT")
    statements += _pg_trigger(EVENTS, "at_head", "BEFORE INSERT", "audit_event_at_head")
    statements += _pg_trigger(CHECKPOINTS, "at_event", "BEFORE INSERT", "audit_checkpoint_at_event")
    statements += _pg_trigger(NODES, "next", "BEFORE INSERT", "audit_merkle_node_next")
    statements += _pg_trigger(HEAD, "once", "BEFORE INSERT", "audit_head_once")
    statements += _pg_trigger(HEAD, "no_delete", "BEFORE DELETE", "audit_append_only")
    statements += _pg_trigger(HEAD, "no_truncate", "BEFORE TRUNCATE", "audit_append_only", "STATEMENT")
    statements += _pg_trigger(HEAD, "forward", "BEFORE UPDATE", "audit_head_forward_only")
    return statements


def _sqlite_trigger(table: str, suffix: str, when: str, message: str, condition: str = "") -> str:
    # The write is refused unless the condition is true: `IS NOT 1` also refuses NULL (a missing row, value).
    guard = f" WHEN ({condition}) IS NOT 1" if condition else ""
    return (
        f"CREATE TRIGGER {table}_{suffix} {when} ON {table}{guard} "
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    )


def _sqlite_statements() -> list[str]:
    statements = []
    for table, keys in APPEND_ONLY.items():
        message = f"audit log is append-only: %s on {table}"
        existing = " OR ".join(
            "(" + " AND ".join(f'"{column}" = NEW."{column}"' for column in key) + ")" for key in keys
        )
        statements += [
            _sqlite_trigger(table, "no_update", "BEFORE UPDATE", message % "UPDATE"),
            _sqlite_trigger(table, "no_delete", "BEFORE DELETE", message % "DELETE"),
            # INSERT OR REPLACE deletes the row it meets without firing the DELETE trigger.
            _sqlite_trigger(
                table,
                "no_replace",
                "BEFORE INSERT",
                message % "INSERT over an existing row",
                f"NOT EXISTS (SELECT 1 FROM {table} WHERE {existing})",
            ),
        ]
    head_seq = f"(SELECT seq FROM {HEAD} WHERE id = 1)"
    statements += [
        _sqlite_trigger(
            EVENTS,
            "at_head",
            "BEFORE INSERT",
            "audit log is append-only: an event is inserted after the head",
            f"NEW.seq > {head_seq}",
        ),
        _sqlite_trigger(
            CHECKPOINTS,
            "at_event",
            "BEFORE INSERT",
            "audit log is append-only: a checkpoint is for a stored event, with its chain hash",
            f"NEW.tree_size >= 1 AND NEW.tree_size <= {head_seq} AND EXISTS "
            f"(SELECT 1 FROM {EVENTS} WHERE seq = NEW.tree_size AND chain_hash = NEW.chain_hash)",
        ),
        _sqlite_trigger(
            NODES,
            "next",
            "BEFORE INSERT",
            "audit log is append-only: a Merkle node is stored next at its level, within the head",
            f'NEW.level BETWEEN {NODE_LEVEL} AND {MAX_NODE_LEVEL} AND NEW."index" >= 0 '
            f'AND NEW."index" < ({head_seq} >> NEW.level) '
            f'AND (NEW."index" = 0 OR EXISTS (SELECT 1 FROM {NODES} '
            f'WHERE level = NEW.level AND "index" = NEW."index" - 1))',
        ),
        _sqlite_trigger(
            HEAD,
            "once",
            "BEFORE INSERT",
            "audit log is append-only: the head is inserted once, empty",
            f"NOT EXISTS (SELECT 1 FROM {HEAD}) AND NEW.seq IS 0 AND NEW.chain_hash IS zeroblob(32)",
        ),
        _sqlite_trigger(HEAD, "no_delete", "BEFORE DELETE", f"audit log is append-only: DELETE on {HEAD}"),
        _sqlite_trigger(
            HEAD,
            "forward",
            "BEFORE UPDATE",
            "audit log head moves forward one event at a time, to a stored event",
            # Rewriting the same values changes nothing (the test suite's fixtures reload the row).
            f"NEW.id IS OLD.id AND (NEW.seq IS OLD.seq AND NEW.chain_hash IS OLD.chain_hash "
            f"OR NEW.seq IS OLD.seq + 1 AND EXISTS "
            f"(SELECT 1 FROM {EVENTS} WHERE seq = NEW.seq AND chain_hash = NEW.chain_hash))",
        ),
    ]
    return statements


def install(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FUNCTION)
            statements = _pg_statements()
        elif connection.vendor == "sqlite":
            statements = _sqlite_statements()
        else:
            raise ImproperlyConfigured(
                f"The append-only audit log needs PostgreSQL or SQLite, not {connection.vendor}."
            )
        for statement in statements:
            cursor.execute(statement)


def remove(connection) -> None:
    """Drop the triggers (what a database owner could do; used by the test suite's flush and tamper tests)."""
    with connection.cursor() as cursor:
        for table in [*APPEND_ONLY, HEAD]:
            for suffix in SUFFIXES:
                if connection.vendor == "postgresql":
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix} ON {table}")
                else:
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")


@contextmanager
def suspended(connection):
    """Without the triggers for the duration of the block; they are put back afterwards, whatever happens."""
    remove(connection)
    try:
        yield
    finally:
        install(connection)
