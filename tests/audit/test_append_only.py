"""The database refuses changes to the audit tables; verification catches what gets around it."""

import threading

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import UniqueConstraint

from audit import triggers
from audit.log import checkpoint_make, root_at
from audit.models import Action, AppendOnlyModel, AuditEvent, AuditHead, MerkleNode
from audit.services import TargetRef, audit_record
from core.source import Source
from tests.factories import AssetFactory
from tests.helpers import IS_POSTGRES

pytestmark = pytest.mark.django_db
ORIGIN = "model-registry.local/audit/v1"
MADE_UP = bytes(range(32))


@pytest.fixture
def events(admin):
    from core.source import Source
    from registry import services

    for index in range(6):
        services.asset_update(actor=admin, source=Source.cli(), asset=AssetFactory(), description=f"v{index}")
    return list(AuditEvent.objects.order_by("seq"))


def append(count):
    """`count` more events through the append path, in the test's transaction."""
    for number in range(count):
        audit_record(
            actor=None,
            action=Action.LOGIN_FAILED,
            target=TargetRef(kind="username", id=f"u{number}", repr=f"u{number}"),
            source=Source.cli(),
        )


@pytest.fixture
def noded(events):
    """520 events and a checkpoint: Merkle nodes 8/0, 8/1 (256 leaves each) and 9/0 (512) are stored."""
    append(520 - len(events))
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")  # and a verification run: every audit table holds rows
    assert set(MerkleNode.objects.values_list("level", "index")) == {(8, 0), (8, 1), (9, 0)}


@pytest.fixture
def filled(events):
    """Every audit table holds a row (the Merkle node is planted: a real one needs 256 events)."""
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")
    tamper(*node_insert(8, 0))


def refused(sql, params=(), match=("append-only", "forward")):
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert any(word in str(excinfo.value) for word in match), excinfo.value


def audit_models():
    return list(apps.get_app_config("audit").get_models())


def columns(table):
    model = next(model for model in audit_models() if model._meta.db_table == table)
    return [field.column for field in model._meta.concrete_fields]


def unique_keys(model):
    meta = model._meta
    keys = {(meta.pk.column,)} | {(field.column,) for field in meta.concrete_fields if field.unique}
    keys |= {
        tuple(meta.get_field(name).column for name in constraint.fields)
        for constraint in meta.constraints
        if isinstance(constraint, UniqueConstraint)
    }
    keys |= {tuple(meta.get_field(name).column for name in names) for names in meta.unique_together}
    return keys


def test_every_audit_table_and_unique_key_is_protected():
    tables = {model._meta.db_table for model in audit_models()}
    assert tables == {*triggers.APPEND_ONLY, triggers.HEAD}
    for model in audit_models():
        if model._meta.db_table == triggers.HEAD:
            continue
        assert issubclass(model, AppendOnlyModel)
        assert set(triggers.APPEND_ONLY[model._meta.db_table]) == unique_keys(model), model


UNIQUE_KEYS = [
    pytest.param(table, key, id=f"{table}-{'+'.join(key)}")
    for table, key in sorted(
        (model._meta.db_table, key)
        for model in audit_models()
        if model._meta.db_table != triggers.HEAD
        for key in unique_keys(model)
    )
]


def copy_row(table, key, verb="INSERT"):
    """An INSERT of a copy of the table's first row that meets it on `key` (the id is copied only for it)."""
    listed = ", ".join(f'"{column}"' for column in columns(table) if column != "id" or key == ("id",))
    first = f"(SELECT MIN(id) FROM {table})"
    return f"{verb} INTO {table} ({listed}) SELECT {listed} FROM {table} WHERE id = {first}"


@pytest.mark.parametrize(("table", "key"), UNIQUE_KEYS)
def test_sqlite_replace_on_any_unique_key_is_refused(filled, table, key):
    if IS_POSTGRES:
        pytest.skip("INSERT OR REPLACE is SQLite syntax")
    rows = list(connection.cursor().execute(f"SELECT * FROM {table} ORDER BY id"))
    refused(copy_row(table, key, "INSERT OR REPLACE"))
    refused(copy_row(table, key, "REPLACE"))
    assert list(connection.cursor().execute(f"SELECT * FROM {table} ORDER BY id")) == rows


@pytest.mark.parametrize(("table", "key"), UNIQUE_KEYS)
def test_upsert_on_any_unique_key_is_refused(filled, table, key):
    column = next(column for column in columns(table) if column not in (*key, "id"))
    conflict = ", ".join(f'"{name}"' for name in key)
    refused(f'{copy_row(table, key)} ON CONFLICT ({conflict}) DO UPDATE SET "{column}" = excluded."{column}"')


def test_sqlite_replace_of_a_merkle_node_is_refused_and_signing_goes_on(noded):
    if IS_POSTGRES:
        pytest.skip("INSERT OR REPLACE is SQLite syntax")
    refused('INSERT OR REPLACE INTO audit_merklenode (level, "index", hash) VALUES (8, 0, %s)', [MADE_UP])
    append(1)
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")


def node_insert(level, index, value=MADE_UP):
    return 'INSERT INTO audit_merklenode (level, "index", hash) VALUES (%s, %s, %s)', [level, index, value]


def test_merkle_node_is_inserted_only_next_at_its_level_within_the_log(events):
    refused(*node_insert(8, 0))  # 6 events: no full subtree of 256 leaves yet
    append(256 - len(events))
    refused(*node_insert(7, 0))  # smaller subtrees are not stored
    refused(*node_insert(8, 1))  # not next at its level, and beyond the head
    refused(*node_insert(9, 0))  # beyond the head
    refused(*node_insert(8, -1), match=("append-only", "CHECK", "check"))
    with connection.cursor() as cursor:
        cursor.execute(*node_insert(8, 0, root_at(256)))
    refused(*node_insert(8, 0), match=("append-only", "duplicate key"))  # the position exists
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")


def head():
    return AuditHead.objects.values_list("seq", "chain_hash").get(pk=1)


def test_head_steps_only_to_the_stored_next_event(events):
    before = head()
    chain = {seq: bytes(value) for seq, value in AuditEvent.objects.values_list("seq", "chain_hash")}
    refused("UPDATE audit_audithead SET seq = seq + 1, chain_hash = %s", [MADE_UP])  # made-up hash
    refused("UPDATE audit_audithead SET seq = seq + 1")  # no event 7
    refused("UPDATE audit_audithead SET seq = seq + 1, chain_hash = %s", [chain[6]])
    refused("UPDATE audit_audithead SET seq = 5, chain_hash = %s", [chain[5]])  # backwards
    refused(
        "INSERT INTO audit_audithead (id, seq, chain_hash) VALUES (1, 7, %s) "
        "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, chain_hash = excluded.chain_hash",
        [MADE_UP],
    )
    assert head() == before
    append(1)  # the append path: the event, then the head
    assert head() == (7, AuditEvent.objects.get(seq=7).chain_hash)


def test_sqlite_replace_of_the_head_is_refused(events):
    if IS_POSTGRES:
        pytest.skip("INSERT OR REPLACE is SQLite syntax")
    before = head()
    refused("INSERT OR REPLACE INTO audit_audithead (id, seq, chain_hash) VALUES (1, 7, %s)", [MADE_UP])
    refused("REPLACE INTO audit_audithead (id, seq, chain_hash) VALUES (1, 0, %s)", [bytes(32)])
    assert head() == before


def test_checkpoint_is_inserted_only_for_a_stored_event(events):
    checkpoint = checkpoint_make(origin=ORIGIN)
    chain = {seq: bytes(value) for seq, value in AuditEvent.objects.values_list("seq", "chain_hash")}
    insert = (
        "INSERT INTO audit_checkpoint (tree_size, root_hash, chain_hash, note, created_at) "
        "VALUES (%s, %s, %s, %s, %s)"
    )
    for size, value in [(7, MADE_UP), (7, chain[6]), (5, chain[6]), (5, MADE_UP), (0, bytes(32))]:
        refused(insert, [size, checkpoint.root_hash, value, checkpoint.note, checkpoint.created_at])
    append(1)  # the checkpointer signs the next size
    assert checkpoint_make(origin=ORIGIN).tree_size == 7


def test_event_is_inserted_after_the_head(events):
    listed = ", ".join(f'"{column}"' for column in columns("audit_auditevent") if column not in ("id", "seq"))
    refused(
        f"INSERT INTO audit_auditevent (seq, {listed}) SELECT 0, {listed} FROM audit_auditevent WHERE seq = 1"
    )


@pytest.mark.parametrize("table", sorted(triggers.APPEND_ONLY))
def test_raw_update_and_delete_are_refused(filled, table):
    refused(f"UPDATE {table} SET id = id")
    refused(f"DELETE FROM {table}")
    refused(f"DELETE FROM {table} WHERE id = (SELECT MIN(id) FROM {table})")


@pytest.mark.postgres
@pytest.mark.parametrize("table", [*sorted(triggers.APPEND_ONLY), triggers.HEAD])
def test_truncate_is_refused_on_postgresql(events, table):
    refused(f"TRUNCATE {table} CASCADE")


@pytest.mark.postgres
def test_replica_role_does_not_bypass_the_triggers(events):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET action = 'x'")


def test_sqlite_replace_is_refused(events):
    if IS_POSTGRES:
        pytest.skip("INSERT OR REPLACE is SQLite syntax")
    refused("INSERT OR REPLACE INTO audit_auditevent SELECT * FROM audit_auditevent WHERE seq = 1")


def test_head_moves_forward_only(events):
    refused("UPDATE audit_audithead SET seq = seq - 1")
    refused("UPDATE audit_audithead SET seq = seq + 5")
    refused("DELETE FROM audit_audithead")
    refused(
        "INSERT INTO audit_audithead (id, seq, chain_hash) VALUES (1, 0, %s)",
        [bytes(32)],
        ("append-only", "UNIQUE", "duplicate key"),
    )


def test_flush_is_refused_outside_the_test_suite(events, settings):
    settings.AUDIT_ALLOW_FLUSH = False
    with pytest.raises(Exception, match="couldn't be flushed"):
        call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.count() == 6


# Tampering around the triggers, as someone who owns the database could -----------------------------


def tamper(sql, params=()):
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify_fails():
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify")
    assert excinfo.value.returncode == 1
    return str(excinfo.value)


def test_untouched_log_verifies(events):
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")


def test_altered_body_is_named(events):
    checkpoint_make(origin=ORIGIN)
    body = bytes(AuditEvent.objects.get(seq=3).body).replace(b'"v2"', b'"v9"')
    tamper("UPDATE audit_auditevent SET body = %s WHERE seq = 3", [body])
    assert verify_fails().startswith("first bad seq 3: altered")


def test_altered_body_with_recomputed_hashes_is_caught_by_the_checkpoint(events):
    from audit.canonical import chain_hash, leaf_hash

    checkpoint_make(origin=ORIGIN)
    rows = list(AuditEvent.objects.order_by("seq"))
    previous = bytes(rows[1].chain_hash)
    for row in rows[2:]:  # rewrite seq 3 and recompute every hash after it, as a careful forger would
        body = bytes(row.body).replace(b'"v2"', b'"v9"')
        leaf = leaf_hash(body)
        previous = chain_hash(previous, leaf)
        tamper(
            "UPDATE audit_auditevent SET body = %s, leaf_hash = %s, chain_hash = %s WHERE seq = %s",
            [body, leaf, previous, row.seq],
        )
    message = verify_fails()
    assert message.startswith(
        "first bad seq 6: altered: the Merkle root at 6 differs from its signed checkpoint"
    )


def test_deleted_row_is_named(events):
    checkpoint_make(origin=ORIGIN)
    tamper("DELETE FROM audit_auditevent WHERE seq = 4")
    assert verify_fails().startswith("first bad seq 4: missing")


def test_swapped_rows_are_named(events):
    checkpoint_make(origin=ORIGIN)
    tamper("UPDATE audit_auditevent SET seq = 1000 WHERE seq = 2")
    tamper("UPDATE audit_auditevent SET seq = 2 WHERE seq = 3")
    tamper("UPDATE audit_auditevent SET seq = 3 WHERE seq = 1000")
    assert verify_fails().startswith("first bad seq 2: reordered")


@pytest.fixture
def small_pages(monkeypatch):
    """Events read two at a time: page ends and the reader running ahead (PostgreSQL) within reach."""
    from audit import verification

    monkeypatch.setattr(verification, "PAGE", 2)
    yield
    assert not [thread for thread in threading.enumerate() if thread.name == "audit-verify-reader"]


def test_log_read_in_small_pages_verifies(noded, small_pages):
    call_command("audit_verify")  # the Merkle nodes are read while the events are


@pytest.mark.parametrize("seq", [2, 3, 4])
def test_deleted_row_at_a_page_end_is_named(events, small_pages, seq):
    tamper("DELETE FROM audit_auditevent WHERE seq = %s", [seq])
    assert verify_fails() == f"first bad seq {seq}: missing: seq {seq} is not in the log"


def test_altered_body_on_the_last_page_is_named(events, small_pages):
    body = bytes(AuditEvent.objects.get(seq=5).body).replace(b'"v4"', b'"v9"')
    tamper("UPDATE audit_auditevent SET body = %s WHERE seq = 5", [body])
    assert verify_fails() == "first bad seq 5: altered: seq 5 does not match its leaf hash"


def test_forged_checkpoint_signature_is_named(events):
    checkpoint = checkpoint_make(origin=ORIGIN)
    forged = checkpoint.note.replace(checkpoint.note.split("\n")[2], "A" * 43 + "=")
    tamper("UPDATE audit_checkpoint SET note = %s WHERE id = %s", [forged, checkpoint.pk])
    assert "signature invalid" in verify_fails()


def test_checkpointer_refuses_to_sign_a_rewritten_log(events, admin):
    from audit.log import InconsistentLog
    from core.source import Source
    from registry import services

    checkpoint_make(origin=ORIGIN)
    tamper("UPDATE audit_auditevent SET leaf_hash = %s WHERE seq = 2", [bytes(32)])
    services.asset_update(actor=admin, source=Source.cli(), asset=AssetFactory(), description="later")
    with pytest.raises(InconsistentLog):
        checkpoint_make(origin=ORIGIN)


def test_log_with_merkle_nodes_verifies(noded):
    append(3)
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")
    assert MerkleNode.objects.count() == 3


def test_replaced_merkle_node_is_named(noded):
    if IS_POSTGRES:
        tamper('UPDATE audit_merklenode SET hash = %s WHERE level = 8 AND "index" = 0', [MADE_UP])
    else:
        tamper('INSERT OR REPLACE INTO audit_merklenode (level, "index", hash) VALUES (8, 0, %s)', [MADE_UP])
    assert verify_fails() == (
        "first bad seq 256: altered: Merkle node 8/0 (seq 1-256) differs from the hash of its leaves"
    )


def test_altered_upper_merkle_node_is_named(noded):
    tamper("UPDATE audit_merklenode SET hash = %s WHERE level = 9", [MADE_UP])
    assert verify_fails() == (
        "first bad seq 512: altered: Merkle node 9/0 (seq 1-512) differs from the hash of its leaves"
    )


def test_merkle_node_of_the_wrong_type_is_named(noded):
    if IS_POSTGRES:
        pytest.skip("a PostgreSQL bytea column holds bytes only")
    tamper("UPDATE audit_merklenode SET hash = 'text' WHERE level = 8 AND \"index\" = 1")
    assert (
        verify_fails() == "first bad seq 512: altered: Merkle node 8/1 (seq 257-512) holds text, not a hash"
    )


def test_deleted_merkle_node_is_named(noded):
    tamper('DELETE FROM audit_merklenode WHERE level = 8 AND "index" = 0')
    assert verify_fails() == "first bad seq 256: missing: Merkle node 8/0 (seq 1-256) is not stored, 8/1 is"


def test_merkle_node_beyond_the_log_is_named(events):
    tamper(*node_insert(8, 0))
    assert (
        verify_fails()
        == "first bad seq 7: altered: Merkle node 8/0 (seq 1-256) lies beyond the log's 6 events"
    )


def test_merkle_node_below_the_stored_levels_is_named(events):
    tamper(*node_insert(2, 0))
    assert verify_fails() == "first bad seq 4: altered: Merkle node 2/0 (seq 1-4) is below the stored levels"


def test_forged_head_hash_is_named(events):
    tamper("UPDATE audit_audithead SET chain_hash = %s", [MADE_UP])
    assert verify_fails() == "first bad seq 6: altered: the head's chain hash is not that of seq 6"


def test_missing_head_is_named(events):
    tamper("DELETE FROM audit_audithead")
    assert verify_fails() == "first bad seq 7: missing: the log's head row is not stored"


BAD_BODIES = [
    (b"not json", "altered: seq 3 is not JSON"),
    (b"\xff\xfe", "altered: seq 3 is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "altered: seq 3 nests too deeply to read"),
    (b"[3]", "altered: seq 3 is not a JSON object"),
    (b'"seq 3"', "altered: seq 3 is not a JSON object"),
    (b'{"seq":3,"x":1e400}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "altered: seq 3 nests too deeply to read"),
    (b'{"seq":true}', "reordered: the event stored at seq 3 says it is seq true"),
    # Sorted compact JSON that is still not RFC 8785: a float JCS writes otherwise, an integer beyond
    # 2^53 - 1, NaN, keys in code point order where JCS sorts by UTF-16, an escape JCS does not use.
    (b'{"seq":3,"x":1e+16}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":1.0}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":9007199254740993}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":NaN}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"\xef\xbf\xbf":1,"\xf0\x9f\x98\x80":2}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":"\\u00e9"}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3, "x":1}', "altered: seq 3 is not in canonical form"),
    (b'{"seq":3,"x":1.5}', "altered: seq 3 does not match its leaf hash"),  # canonical, not the event
]


@pytest.mark.parametrize(("body", "problem"), BAD_BODIES)
def test_unreadable_body_is_named(events, body, problem):
    tamper("UPDATE audit_auditevent SET body = %s WHERE seq = 3", [body])
    assert verify_fails() == f"first bad seq 3: {problem}"


SQLITE_BAD_COLUMNS = [
    ("body = CAST(body AS TEXT)", "altered: the body of seq 3 is text, not bytes"),
    ("body = 7", "altered: the body of seq 3 is an integer, not bytes"),
    ("body = 0.5", "altered: the body of seq 3 is a real number, not bytes"),
    ("leaf_hash = 'abc'", "altered: the leaf hash of seq 3 is text, not bytes"),
    ("chain_hash = 12", "altered: the chain hash of seq 3 is an integer, not bytes"),
]


@pytest.mark.parametrize(("assignment", "problem"), SQLITE_BAD_COLUMNS)
def test_sqlite_column_of_the_wrong_type_is_named(events, assignment, problem):
    if IS_POSTGRES:
        pytest.skip("PostgreSQL columns hold only their declared type")
    tamper(f"UPDATE audit_auditevent SET {assignment} WHERE seq = 3")
    assert verify_fails() == f"first bad seq 3: {problem}"


def test_sqlite_seq_of_the_wrong_type_is_named(events):
    if IS_POSTGRES:
        pytest.skip("PostgreSQL columns hold only their declared type")
    tamper("UPDATE audit_auditevent SET seq = 'six' WHERE seq = 6")
    assert verify_fails() == "first bad seq 6: altered: the event after seq 5 has seq 'six', not a number"


@pytest.mark.postgres
@pytest.mark.parametrize("column", ["body", "leaf_hash", "chain_hash"])
def test_null_column_is_named(events, column):
    tamper(f"ALTER TABLE audit_auditevent ALTER COLUMN {column} DROP NOT NULL")
    tamper(f"UPDATE audit_auditevent SET {column} = NULL WHERE seq = 3")
    name = column.replace("_", " ")
    assert verify_fails() == f"first bad seq 3: altered: the {name} of seq 3 is NULL, not bytes"


def test_event_before_the_log_is_named(events):
    listed = ", ".join(f'"{column}"' for column in columns("audit_auditevent") if column not in ("id", "seq"))
    tamper(
        f"INSERT INTO audit_auditevent (seq, {listed}) SELECT 0, {listed} FROM audit_auditevent WHERE seq = 1"
    )
    assert verify_fails() == "first bad seq 1: altered: an event is stored at seq 0, before the log's first"


def test_checkpoint_chain_hash_is_checked(events):
    checkpoint_make(origin=ORIGIN)
    tamper("UPDATE audit_checkpoint SET chain_hash = %s", [MADE_UP])
    assert verify_fails() == "first bad seq 6: altered: checkpoint 6 holds a chain hash not that of seq 6"


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("root_hash = 'abc'", "checkpoint 6: the root hash is text, not bytes"),
        ("chain_hash = 1", "checkpoint 6: the chain hash is an integer, not bytes"),
        ("note = CAST(note AS BLOB)", "checkpoint 6: the note is bytes, not text"),
    ],
)
def test_sqlite_checkpoint_column_of_the_wrong_type_is_named(events, assignment, problem):
    if IS_POSTGRES:
        pytest.skip("PostgreSQL columns hold only their declared type")
    checkpoint_make(origin=ORIGIN)
    tamper(f"UPDATE audit_checkpoint SET {assignment}")
    assert verify_fails() == f"first bad seq 6: {problem}"
