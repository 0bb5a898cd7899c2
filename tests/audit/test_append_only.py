"""The database refuses changes to the audit tables; verification catches what gets around it."""

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit import triggers
from audit.log import checkpoint_make
from audit.models import AuditEvent, MerkleNode
from tests.conftest import IS_POSTGRES
from tests.factories import AssetFactory

pytestmark = pytest.mark.django_db
ORIGIN = "model-registry.local/audit/v1"


@pytest.fixture
def events(user):
    from core.source import Source
    from registry import services

    for index in range(6):
        services.asset_update(actor=user, source=Source.cli(), asset=AssetFactory(), description=f"v{index}")
    return list(AuditEvent.objects.order_by("seq"))


def refused(sql, params=()):
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert "append-only" in str(excinfo.value) or "forward" in str(excinfo.value)


@pytest.mark.parametrize("table", sorted(triggers.APPEND_ONLY))
def test_raw_update_and_delete_are_refused(events, table):
    checkpoint_make(origin=ORIGIN)
    call_command("audit_verify")
    MerkleNode.objects.create(level=8, index=0, hash=bytes(32))  # every table holds a row to protect
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


def test_forged_checkpoint_signature_is_named(events):
    checkpoint = checkpoint_make(origin=ORIGIN)
    forged = checkpoint.note.replace(checkpoint.note.split("\n")[2], "A" * 43 + "=")
    tamper("UPDATE audit_checkpoint SET note = %s WHERE id = %s", [forged, checkpoint.pk])
    assert "signature invalid" in verify_fails()


def test_checkpointer_refuses_to_sign_a_rewritten_log(events, user):
    from audit.log import InconsistentLog
    from core.source import Source
    from registry import services

    checkpoint_make(origin=ORIGIN)
    tamper("UPDATE audit_auditevent SET leaf_hash = %s WHERE seq = 2", [bytes(32)])
    services.asset_update(actor=user, source=Source.cli(), asset=AssetFactory(), description="later")
    with pytest.raises(InconsistentLog):
        checkpoint_make(origin=ORIGIN)
