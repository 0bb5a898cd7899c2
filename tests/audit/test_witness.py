"""The witness: checkpoints leave the database; a restore from an older backup cannot fork the log unnoticed.

Each test has its own witness directory (tests/conftest.py `audit_witness`). A restore is simulated as the
database's owner could do it: with the triggers suspended, the rows after the backup's last event are removed
and the head is put back, then other events are appended through the append path.
"""

import stat

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit import triggers, witness
from audit.log import WitnessConflict, checkpoint_make, signing_status
from audit.models import Action, AuditEvent, AuditHead, Checkpoint
from audit.services import TargetRef, audit_record
from core.source import Source
from tests.helpers import api_client

pytestmark = pytest.mark.django_db
ORIGIN = settings.AUDIT_LOG_ORIGIN


def append(count, name="u"):
    """`count` more events through the append path, each naming `name` and its number."""
    for number in range(count):
        audit_record(
            actor=None,
            action=Action.LOGIN_FAILED,
            target=TargetRef(kind="username", id=f"{name}{number}", repr=f"{name}{number}"),
            source=Source.cli(),
        )


def restore_to(size):
    """The database as a backup taken at `size` events would bring it back (the witness stays as it is)."""
    chain = bytes(AuditEvent.objects.get(seq=size).chain_hash)
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > %s", [size])
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size > %s", [size])
        cursor.execute("UPDATE audit_audithead SET seq = %s, chain_hash = %s", [size, chain])


def witness_files(directory):
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def verify_fails():
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify")
    return str(excinfo.value)


@pytest.fixture
def witnessed(audit_witness):
    """Checkpoints at 6 and 10, both witnessed."""
    append(6)
    checkpoint_make(origin=ORIGIN)
    append(4, "v")
    checkpoint_make(origin=ORIGIN)
    return audit_witness


def test_each_signed_checkpoint_is_written_to_the_witness_as_served(witnessed, admin):
    notes = dict(Checkpoint.objects.values_list("tree_size", "note"))
    assert set(notes) == {6, 10}
    for checkpoint in Checkpoint.objects.all():
        path = (
            witnessed / "checkpoints" / witness.entry_name(checkpoint.tree_size, bytes(checkpoint.root_hash))
        )
        assert path.read_text() == checkpoint.note
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (witnessed / "latest.txt").read_text() == notes[10]
    assert stat.S_IMODE((witnessed / "checkpoints").stat().st_mode) & 0o077 == 0
    assert not [path for path in witnessed.rglob(".tmp-*")]  # no temporary file left behind

    served = api_client(admin).get("/api/v1/audit/checkpoints").json()["results"]
    assert [(row["tree_size"], row["note"], row["witnessed"]) for row in served] == [
        (6, notes[6], True),
        (10, notes[10], True),
    ]
    assert api_client(admin).get("/api/v1/audit/checkpoint").json()["note"] == notes[10]
    call_command("audit_verify")


def test_a_witness_that_cannot_be_written_leaves_no_checkpoint(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.AUDIT_WITNESS_DIR = str(blocker / "witness")
    append(3)
    with pytest.raises(CommandError, match=r"refusing to sign: the witness .* cannot be written"):
        call_command("audit_checkpoint")
    with pytest.raises(witness.WitnessUnavailable):
        checkpoint_make(origin=ORIGIN)
    assert not Checkpoint.objects.exists()


def test_restore_from_an_older_backup_stops_signing_and_names_the_witnessed_checkpoint(
    witnessed, client, admin
):
    before = witness_files(witnessed)
    restore_to(6)
    # Behind the witness: the events after 6 are gone.
    assert signing_status().startswith(
        "refused: the database holds 6 events, fewer than the witnessed checkpoint"
    )
    assert "size 10" in signing_status()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["audit_signing"].startswith("refused:") and "size 10" in ready.json()["audit_signing"]

    append(4, "other")  # another history of the same size
    assert AuditHead.objects.get().seq == 10
    with pytest.raises(
        WitnessConflict, match="not an extension of the witnessed checkpoint at size 10"
    ) as excinfo:
        checkpoint_make(origin=ORIGIN)
    assert excinfo.value.witnessed.size == 10
    with pytest.raises(CommandError, match="audit_witness_accept --size 10"):
        call_command("audit_checkpoint")
    assert list(Checkpoint.objects.values_list("tree_size", flat=True)) == [6]
    assert witness_files(witnessed) == before  # nothing signed, nothing witnessed

    conflicting = excinfo.value.witnessed
    assert conflicting.name.startswith("checkpoints/00000000000000000010-")
    assert verify_fails() == (
        "first bad seq 10: forked: the log differs from the witnessed checkpoint at size 10 (root "
        f"{conflicting.root_hash.hex()[:16]}…, {conflicting.name}): restored or rewritten"
    )
    assert "size 10" in client.get("/readyz").json()["audit_signing"]
    export = api_client(admin).get("/api/v1/audit/export?format=bundle")
    assert export.status_code == 409 and export.json()["type"] == "audit-signing-refused"
    assert "size 10" in export.json()["detail"]


def test_the_database_behind_the_witness_fails_verification(witnessed):
    restore_to(6)
    assert verify_fails().startswith(
        "first bad seq 7: forked: the log holds 6 events, fewer than the witnessed checkpoint at size 10"
    )


def test_an_accepted_fork_is_audited_and_the_witness_keeps_both_histories(witnessed, client):
    old = {path: (witnessed / path).read_text() for path in witness_files(witnessed)}
    restore_to(6)
    append(4, "other")
    with pytest.raises(CommandError, match="the conflicting witnessed checkpoint is at size 10"):
        call_command("audit_witness_accept", size=9, reason="restored the 06:00 backup")
    with pytest.raises(CommandError, match="reason"):
        call_command("audit_witness_accept", size=10, reason="  ")
    assert AuditEvent.objects.count() == 10

    call_command("audit_witness_accept", size=10, reason="restored the 06:00 backup after a disk failure")

    event = AuditEvent.objects.get(seq=11)
    assert event.action == Action.AUDIT_FORK_ACCEPTED
    assert event.changes["reason"] == "restored the 06:00 backup after a disk failure"
    assert "operator" in event.changes and event.changes["log_size"] == 10
    assert [item["size"] for item in event.changes["superseded"]] == [10]
    # Every old witness file is still there, unchanged; the fork record and the new checkpoint are added.
    assert all((witnessed / path).read_text() == text for path, text in old.items() if path != "latest.txt")
    forks = witness.forks()
    assert len(forks) == 1 and forks[0]["audit_seq"] == 11 and forks[0]["superseded"][0]["size"] == 10
    assert list(Checkpoint.objects.values_list("tree_size", flat=True)) == [6, 11]
    eleven = Checkpoint.objects.get(tree_size=11)
    assert witness.holds(11, bytes(eleven.root_hash))
    assert (witnessed / "latest.txt").read_text() == eleven.note
    assert len(list((witnessed / "checkpoints").glob("00000000000000000010-*"))) == 1  # the old 10 only

    call_command("audit_verify")
    assert signing_status() == "ok"
    assert client.get("/readyz").status_code == 200
    append(2)
    assert checkpoint_make(origin=ORIGIN).tree_size == 13


def test_a_fork_record_that_cannot_be_written_accepts_nothing(witnessed):
    restore_to(6)
    append(4, "other")
    (witnessed / "forks").write_text("")  # the forks directory cannot be made
    with pytest.raises(CommandError, match="nothing was accepted"):
        call_command("audit_witness_accept", size=10, reason="restored")
    assert AuditEvent.objects.count() == 10
    assert not AuditEvent.objects.filter(action=Action.AUDIT_FORK_ACCEPTED).exists()


def test_nothing_to_accept_when_the_log_extends_the_witness(witnessed):
    append(1)
    with pytest.raises(CommandError, match="no fork to accept"):
        call_command("audit_witness_accept", size=10, reason="curious")
    assert checkpoint_make(origin=ORIGIN).tree_size == 11


def test_a_witness_entry_is_never_overwritten(witnessed):
    checkpoint = Checkpoint.objects.get(tree_size=10)
    root = bytes(checkpoint.root_hash)
    witness.publish(checkpoint.note, 10, root)  # the same checkpoint again: the same file, nothing changes
    with pytest.raises(witness.WitnessUnavailable, match="exists with other content"):
        witness.publish(checkpoint.note.replace("\n10\n", "\n11\n"), 10, root)
    assert (witnessed / "checkpoints" / witness.entry_name(10, root)).read_text() == checkpoint.note


def test_without_a_witness_the_history_says_so(settings, admin):
    settings.AUDIT_WITNESS_DIR = None
    append(2)
    checkpoint_make(origin=ORIGIN)
    served = api_client(admin).get("/api/v1/audit/checkpoints").json()["results"]
    assert [(row["tree_size"], row["witnessed"]) for row in served] == [(2, None)]
    assert signing_status() == "ok"
