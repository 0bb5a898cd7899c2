"""The log verified in ranges by processes of their own (audit.verify_range) names what one walk names.

These tests commit for real (transactional test cases): the range processes have connections of their own
and see only committed rows. 868 events, three processes: ranges 1-256, 257-512 and 513 to the end, with
checkpoints at 600 (inside the last range) and 868 (its end) and the Merkle nodes those store.
"""

import pytest
from django.db import connection, transaction

from audit import triggers, verification
from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
from audit.log import checkpoint_make
from audit.models import Action, AuditEvent, MerkleNode
from audit.services import TargetRef, audit_record
from core.source import Source

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ORIGIN = "model-registry.local/audit/v1"
COUNT = 868
# first, inside and last event of each range
POSITIONS = [1, 100, 256, 257, 400, 512, 513, 600, 700, 868]


def _append(count: int) -> None:
    with transaction.atomic():
        for number in range(count):
            audit_record(
                actor=None,
                action=Action.LOGIN_FAILED,
                target=TargetRef(kind="username", id=f"u{number}", repr=f"u{number}"),
                source=Source.cli(),
            )


@pytest.fixture
def log(monkeypatch):
    monkeypatch.setattr(verification, "PARALLEL_FROM", 0)
    monkeypatch.setattr(verification, "PAGE", 100)  # several pages per range, the last one short
    _append(600 - AuditEvent.objects.count())
    checkpoint_make(origin=ORIGIN)
    _append(COUNT - 600)
    checkpoint_make(origin=ORIGIN)
    assert verification._ranges(3) == [(1, 256), (257, 512), (513, None)]
    assert set(MerkleNode.objects.values_list("level", "index")) == {(8, 0), (8, 1), (8, 2), (9, 0)}


@pytest.fixture
def walks(monkeypatch):
    """How many times a verification walked (from seq 1 or from a range's end): 1 when the ranges joined."""
    calls = []
    run = verification._Walk.run

    def counted(self, last=None):
        calls.append(last)
        return run(self, last)

    monkeypatch.setattr(verification._Walk, "run", counted)
    return calls


def _tamper(sql, params=()):
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _row(seq):
    return AuditEvent.objects.values_list("body", "leaf_hash", "chain_hash").get(seq=seq)


def _restore(seq, row):
    _tamper(
        "UPDATE audit_auditevent SET body = %s, leaf_hash = %s, chain_hash = %s WHERE seq = %s",
        [bytes(row[0]), bytes(row[1]), bytes(row[2]), seq],
    )


def _both():
    """(first bad seq, problem) of the walk in ranges and of the one-process walk, which must agree."""
    split = verification.verify_log(record=False, processes=3)
    single = verification.verify_log(record=False, processes=1)
    assert (split.ok, split.first_bad_seq, split.problem, split.events) == (
        single.ok,
        single.first_bad_seq,
        single.problem,
        single.events,
    )
    return split.first_bad_seq, split.problem


def test_ranges_join_into_the_whole_log(log, walks):
    result = verification.verify_log(record=False, processes=3)
    assert (result.ok, result.events, result.checkpoints) == (True, COUNT, 2)
    assert walks == [256]  # the first range here, the others joined by their hashes: no second walk
    assert verification.verify_log(record=False, processes=2).ok


def _altered(seq, row):  # canonical, states its seq, not the event that was hashed
    return bytes(row[0]).replace(b'"u', b'"x', 1), bytes(row[1]), bytes(row[2])


def _not_canonical(seq, row):
    return bytes(row[0]).replace(b'{"', b'{ "', 1), bytes(row[1]), bytes(row[2])


def _leaf(seq, row):
    return bytes(row[0]), bytes(32), bytes(row[2])


def _chain(seq, row):
    return bytes(row[0]), bytes(row[1]), bytes(32)


def _rehashed(seq, row):  # a careful forger: the leaf and this event's chain hash recomputed
    body = bytes(row[0]).replace(b'"u', b'"x', 1)
    before = GENESIS_CHAIN if seq == 1 else bytes(_row(seq - 1)[2])
    leaf = leaf_hash(body)
    return body, leaf, chain_hash(before, leaf)


CHANGES = {
    "altered": (_altered, "altered: seq {seq} does not match its leaf hash"),
    "not canonical": (_not_canonical, "altered: seq {seq} is not in canonical form"),
    "leaf hash": (_leaf, "altered: seq {seq} does not match its leaf hash"),
    "chain hash": (_chain, "altered: the chain breaks at seq {seq}"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_bad_event_in_any_range_is_named_at_its_seq(log, change):
    make, problem = CHANGES[change]
    for seq in POSITIONS:
        row = _row(seq)
        body, leaf, chain = make(seq, row)
        _tamper(
            "UPDATE audit_auditevent SET body = %s, leaf_hash = %s, chain_hash = %s WHERE seq = %s",
            [body, leaf, chain, seq],
        )
        assert _both() == (seq, problem.format(seq=seq)), seq
        _restore(seq, row)
    assert _both() == (None, "")


def _stored(seq):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM audit_auditevent WHERE seq = %s", [seq])
        return [column[0] for column in cursor.description], cursor.fetchone()


def test_a_deleted_event_in_any_range_is_named(log):
    for seq in POSITIONS:
        columns, row = _stored(seq)
        _tamper("DELETE FROM audit_auditevent WHERE seq = %s", [seq])
        if seq < COUNT:
            assert _both() == (seq, f"missing: seq {seq} is not in the log"), seq
        else:
            assert _both() == (seq, f"missing: the log's head says {seq} events, {seq - 1} were found")
        marks = ", ".join(["%s"] * len(row))
        _tamper(f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({marks})", list(row))
    assert _both() == (None, "")


def test_a_rewritten_event_in_any_range_breaks_the_next_link_or_the_checkpoint(log):
    for seq in POSITIONS:
        row = _row(seq)
        _tamper(
            "UPDATE audit_auditevent SET body = %s, leaf_hash = %s, chain_hash = %s WHERE seq = %s",
            [*_rehashed(seq, row), seq],
        )
        if seq % 256 == 0:  # the stored node of the block it ends first
            first, problem = _both()
            assert (first, problem[:25]) == (seq, f"altered: Merkle node 8/{seq // 256 - 1} ")
        elif seq not in (600, COUNT):
            assert _both() == (seq + 1, f"altered: the chain breaks at seq {seq + 1}"), seq
        else:  # a checkpoint
            assert _both() == (seq, f"altered: the Merkle root at {seq} differs from its signed checkpoint")
        _restore(seq, row)
    assert _both() == (None, "")


@pytest.mark.parametrize(
    ("level", "index", "seq"),
    [(8, 0, 256), (8, 1, 512), (8, 2, 768), (9, 0, 512)],
)
def test_an_altered_merkle_node_in_a_later_range_is_named(log, walks, level, index, seq):
    _tamper(
        'UPDATE audit_merklenode SET hash = %s WHERE level = %s AND "index" = %s', [bytes(32), level, index]
    )
    first, problem = _both()
    assert first == seq
    assert problem.startswith(f"altered: Merkle node {level}/{index} ")
    assert walks == [256, None]  # in ranges: found in the first or while joining, not by a second walk


def test_a_checkpoint_inside_a_later_range_is_checked(log):
    _tamper("UPDATE audit_checkpoint SET chain_hash = %s WHERE tree_size = 600", [bytes(32)])
    assert _both() == (600, "altered: checkpoint 600 holds a chain hash not that of seq 600")
