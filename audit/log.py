"""The log as a Merkle tree: leaf hashes from the database, stored subtree hashes, signed checkpoints."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import IntegrityError, transaction
from django.db.models import Max

from audit import merkle, notes, witness
from audit.models import Action, AuditEvent, AuditHead, Checkpoint, MerkleNode
from audit.signing import signing_key

NODE_LEVEL = 8  # subtrees of 256 leaves and up are stored; smaller ranges are hashed from the leaves
NODE_SIZE = 1 << NODE_LEVEL


def leaf_hashes(start: int, end: int) -> list[bytes]:
    """Leaf hashes of tree indexes [start, end), i.e. of events seq start+1 … end, in order."""
    rows = (
        AuditEvent.objects.filter(seq__gt=start, seq__lte=end)
        .order_by("seq")
        .values_list("leaf_hash", flat=True)
    )
    hashes = [bytes(value) for value in rows]
    if len(hashes) != end - start:
        raise LookupError(f"the log has a gap between seq {start + 1} and {end}")
    return hashes


def stored_node(start: int, size: int) -> bytes | None:
    if size < NODE_SIZE:
        return None
    level = size.bit_length() - 1
    value = MerkleNode.objects.filter(level=level, index=start // size).values_list("hash", flat=True).first()
    return bytes(value) if value is not None else None


def hasher() -> merkle.RangeHasher:
    return merkle.RangeHasher(fetch=leaf_hashes, cached=stored_node, leaf_block=NODE_SIZE)


def extend_nodes(size: int) -> None:
    """Store the hashes of every full, aligned subtree of >= 256 leaves within the first `size` leaves."""
    level = NODE_LEVEL
    while (1 << level) <= size:
        span = 1 << level
        have = MerkleNode.objects.filter(level=level).aggregate(top=Max("index"))["top"]
        for index in range(0 if have is None else have + 1, size // span):
            start = index * span
            if level == NODE_LEVEL:
                value = merkle.root(leaf_hashes(start, start + span))
            else:
                value = merkle.node_hash(
                    stored_node(start, span // 2), stored_node(start + span // 2, span // 2)
                )
            MerkleNode.objects.create(level=level, index=index, hash=value)
        level += 1


def root_at(size: int) -> bytes:
    return hasher().mth(0, size)


class InconsistentLog(Exception):
    """The log no longer extends the last signed checkpoint: it was rewritten."""


class WitnessConflict(InconsistentLog):
    """The log does not extend the latest witnessed checkpoint: the database was restored or rewritten."""

    def __init__(self, problem: str, witnessed: witness.Witnessed) -> None:
        super().__init__(
            f"{problem}. Nothing is signed until an operator resolves it: see docs/operations.md "
            f"(after a restore), then manage.py audit_witness_accept --size {witnessed.size} --reason TEXT"
        )
        self.witnessed = witnessed


class WrongSigningKey(Exception):
    """The configured signing key (or origin) is not the one that signed the log's checkpoints."""


def check_same_signer(last: Checkpoint, origin: str, key: Ed25519PrivateKey) -> None:
    """Refuse to sign with a key (or origin) other than the last checkpoint's.

    A checkpoint signed by another key, e.g. a development key created on first use by a command run with the
    wrong settings module, can never be removed from the append-only log and fails every later audit_verify.
    """
    try:
        notes.open_checkpoint(last.note, notes.verifier_key(origin, key.public_key()), origin=origin)
    except (notes.NoteError, ValueError):
        raise WrongSigningKey(
            f"the checkpoints of this log are not signed by the key in AUDIT_SIGNING_KEY_FILE for origin "
            f"{origin!r} (the checkpoint at size {last.tree_size} does not verify with it); is "
            "DJANGO_SETTINGS_MODULE (or AUDIT_SIGNING_KEY_FILE, AUDIT_LOG_ORIGIN) the production one?"
        ) from None


@transaction.atomic
def checkpoint_make(*, origin: str) -> Checkpoint | None:
    """Sign a checkpoint for the log as it is now, if it grew since the last one; never sign a fork.

    With a witness configured (AUDIT_WITNESS_DIR) the log must extend the latest witnessed checkpoint, and the
    checkpoint is written to the witness before its row commits: a failed write rolls the row back, so no
    checkpoint exists only in the database.
    """
    size = AuditHead.objects.values_list("seq", flat=True).get(pk=1)
    last = Checkpoint.objects.order_by("-tree_size").first()
    if size == 0 or (last is not None and last.tree_size >= size):
        return None
    key = signing_key()
    if last is not None:
        check_same_signer(last, origin, key)
    extend_nodes(size)
    tree = hasher()
    root_hash = tree.mth(0, size)
    if last is not None:
        proof = tree.consistency_proof(last.tree_size, size)
        if not merkle.verify_consistency(last.tree_size, size, proof, bytes(last.root_hash), root_hash):
            raise InconsistentLog(f"the log is not an extension of the checkpoint at size {last.tree_size}")
    witnessed = witness.latest()
    if witnessed is not None and (problem := witness.conflict(witnessed, size, root_hash, tree)):
        raise WitnessConflict(problem, witnessed)
    chain = AuditEvent.objects.values_list("chain_hash", flat=True).get(seq=size)
    note = notes.sign(notes.checkpoint_text(origin, size, root_hash), origin, key)
    try:
        with transaction.atomic():
            checkpoint = Checkpoint.objects.create(
                tree_size=size, root_hash=root_hash, chain_hash=chain, note=note
            )
    except IntegrityError:  # another process signed this size first
        return Checkpoint.objects.get(tree_size=size)
    witness.publish(note, size, root_hash)  # WitnessUnavailable: the row rolls back with the transaction
    return checkpoint


@transaction.atomic(durable=True)
def witness_fork_accept(*, actor, source, size: int, reason: str, operator: str = "") -> AuditEvent:
    """Accept that the log no longer extends the witness (after a restore), on the record and in the witness.

    The operator names the conflicting witnessed checkpoint (the size the refusal named) and says why. Every
    witnessed checkpoint the log does not match is superseded by a fork record written to the witness, next to
    them (nothing is removed); the acceptance is an audit event, which the next checkpoint covers.
    """
    from audit.services import TargetRef, audit_record, lock_log
    from core.exceptions import Conflict, InvalidInput

    if not reason.strip():
        raise InvalidInput.field("reason", "say why the database's log is accepted (e.g. the restore)")
    lock_log()  # the log does not grow between the comparison and the record
    witnessed = witness.latest()
    current = AuditHead.objects.values_list("seq", flat=True).get(pk=1)
    extend_nodes(current)
    tree = hasher()
    root_hash = tree.mth(0, current)
    if witnessed is None or not witness.conflict(witnessed, current, root_hash, tree):
        raise Conflict("The log extends the witness: there is no fork to accept.", type="no-fork")
    if size != witnessed.size:
        raise InvalidInput.field("size", f"the conflicting witnessed checkpoint is at size {witnessed.size}")
    superseded = _conflicting(current, tree)
    items = [
        {"size": entry.size, "root_hash": entry.root_hash.hex(), "file": entry.name} for entry in superseded
    ]
    event = audit_record(
        actor=actor,
        action=Action.AUDIT_FORK_ACCEPTED,
        target=TargetRef(kind="audit.checkpoint", id=str(size), repr=f"witnessed checkpoint {size}"),
        source=source,
        changes={"reason": reason, "operator": operator, "log_size": current, "superseded": items},
        positioned=True,  # the witness's fork record names the event's position and time
    )
    witness.record_fork(
        {
            "accepted_at": event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "size": size,
            "reason": reason,
            "operator": operator,
            "audit_seq": event.seq,
            "log_size": current,
            "log_root_hash": root_hash.hex(),
            "superseded": items,
        }
    )
    return event


def _conflicting(size: int, tree: merkle.RangeHasher) -> list[witness.Witnessed]:
    """The witnessed checkpoints of the current history that the log of `size` leaves does not match.

    The current history is linear (the checkpointer extends it only), so every entry after the first
    conflicting one conflicts too.
    """
    superseded = witness.superseded_keys()
    found: list[witness.Witnessed] = []
    for entry in witness.entries():
        if (entry.size, entry.root_hash) in superseded:
            continue
        if found or entry.size > size or tree.mth(0, entry.size) != entry.root_hash:
            found.append(entry)
    return found


def signing_status() -> str:
    """'ok', or 'refused: …' naming the witnessed checkpoint the log does not extend (for /readyz).

    Cheap when all is well: the database's own checkpoint at the witnessed size (one indexed read).
    """
    try:
        witnessed = witness.latest()
    except witness.WitnessUnavailable as exc:
        return f"refused: {exc}"
    if witnessed is None:
        return "ok"
    size = AuditHead.objects.values_list("seq", flat=True).get(pk=1)
    if size >= witnessed.size:
        stored = (
            Checkpoint.objects.filter(tree_size=witnessed.size).values_list("root_hash", flat=True).first()
        )
        if stored is not None and bytes(stored) == witnessed.root_hash:
            return "ok"
        if root_at(witnessed.size) == witnessed.root_hash:
            return "ok"
        return f"refused: the log is not an extension of {witnessed.describe()}"
    return f"refused: the database holds {size} events, fewer than {witnessed.describe()}"
