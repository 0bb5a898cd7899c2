"""Database triggers that make the audit tables append-only (installed by a migration).

They stop the application and accidents: UPDATE, DELETE and TRUNCATE (and on SQLite the REPLACE forms of
INSERT, which would overwrite a row without firing a DELETE trigger) are refused. Whoever owns the
database can remove them; that is caught by verification against signed checkpoints kept elsewhere.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured

# Append-only tables and the columns that identify a row (a REPLACE on any of them is refused on SQLite).
APPEND_ONLY = {
    "audit_auditevent": ["id", "seq"],
    "audit_checkpoint": ["id", "tree_size"],
    "audit_merklenode": ["id"],
    "audit_verificationrun": ["id"],
}
HEAD = "audit_audithead"

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = OLD.seq AND NEW.chain_hash = OLD.chain_hash THEN
        RETURN NEW;  -- rewriting the same values changes nothing
    END IF;
    IF NEW.seq <> OLD.seq + 1 THEN
        RAISE EXCEPTION 'audit log head moves forward one event at a time (% -> %)', OLD.seq, NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
"""


def _pg_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
        # ALWAYS: the triggers fire even with session_replication_role = replica.
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_change",
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate",
    ]


def _pg_head_statements() -> list[str]:
    return [
        f"CREATE TRIGGER {HEAD}_no_delete BEFORE DELETE ON {HEAD} "
        f"FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        f"CREATE TRIGGER {HEAD}_no_truncate BEFORE TRUNCATE ON {HEAD} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
        f"CREATE TRIGGER {HEAD}_forward BEFORE UPDATE ON {HEAD} "
        f"FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()",
        f"ALTER TABLE {HEAD} ENABLE ALWAYS TRIGGER {HEAD}_no_delete",
        f"ALTER TABLE {HEAD} ENABLE ALWAYS TRIGGER {HEAD}_no_truncate",
        f"ALTER TABLE {HEAD} ENABLE ALWAYS TRIGGER {HEAD}_forward",
    ]


def _sqlite_statements(table: str, keys: list[str]) -> list[str]:
    message = f"audit log is append-only: %s on {table}"
    replaced = " OR ".join(f"{key} = NEW.{key}" for key in keys)
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{message % 'UPDATE'}'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{message % 'DELETE'}'); END",
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {replaced}) "
        f"BEGIN SELECT RAISE(ABORT, '{message % 'REPLACE'}'); END",
    ]


def _sqlite_head_statements() -> list[str]:
    return [
        f"CREATE TRIGGER {HEAD}_no_delete BEFORE DELETE ON {HEAD} "
        f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE on {HEAD}'); END",
        f"CREATE TRIGGER {HEAD}_forward BEFORE UPDATE ON {HEAD} WHEN NEW.seq <> OLD.seq + 1 "
        "AND NOT (NEW.seq = OLD.seq AND NEW.chain_hash = OLD.chain_hash) "
        f"BEGIN SELECT RAISE(ABORT, 'audit log head moves forward one event at a time'); END",
    ]


def install(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FUNCTION)
            statements = [s for table in APPEND_ONLY for s in _pg_statements(table)] + _pg_head_statements()
        elif connection.vendor == "sqlite":
            statements = [s for table, keys in APPEND_ONLY.items() for s in _sqlite_statements(table, keys)]
            statements += _sqlite_head_statements()
        else:
            raise ImproperlyConfigured(
                f"The append-only audit log needs PostgreSQL or SQLite, not {connection.vendor}."
            )
        for statement in statements:
            cursor.execute(statement)


def remove(connection) -> None:
    """Drop the triggers (what a database owner could do; used by the test suite's flush and tamper tests)."""
    with connection.cursor() as cursor:
        tables = [*APPEND_ONLY, HEAD]
        if connection.vendor == "postgresql":
            for table in tables:
                for suffix in ("no_change", "no_truncate", "no_delete", "forward"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix} ON {table}")
        else:
            for table in tables:
                for suffix in ("no_update", "no_delete", "no_replace", "forward"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")


@contextmanager
def suspended(connection):
    """Without the triggers for the duration of the block; they are put back afterwards, whatever happens."""
    remove(connection)
    try:
        yield
    finally:
        install(connection)
