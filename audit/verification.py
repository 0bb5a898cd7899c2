"""Recompute the whole log against its signed checkpoints and name the first thing that is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass

import rfc8785
from django.conf import settings
from django.utils import timezone

from audit import merkle, notes
from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
from audit.export import by_seq
from audit.models import AuditEvent, AuditHead, Checkpoint, VerificationRun
from audit.signing import verifier_key


@dataclass
class Result:
    ok: bool
    events: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify_log(*, verifier: str | None = None, record: bool = True) -> Result:
    """One streaming pass over every event (constant memory); checkpoints checked as their size is reached."""
    started = timezone.now()
    verifier = verifier or verifier_key()
    checkpoints = {}
    for checkpoint in Checkpoint.objects.order_by("tree_size"):
        try:
            opened = notes.open_checkpoint(checkpoint.note, verifier, origin=settings.AUDIT_LOG_ORIGIN)
        except (notes.NoteError, ValueError) as exc:
            return _done(
                started,
                record,
                Result(
                    False,
                    0,
                    0,
                    checkpoint.tree_size,
                    f"checkpoint {checkpoint.tree_size}: signature invalid ({exc})",
                ),
            )
        if opened.size != checkpoint.tree_size or opened.root_hash != bytes(checkpoint.root_hash):
            return _done(
                started,
                record,
                Result(
                    False,
                    0,
                    0,
                    checkpoint.tree_size,
                    f"checkpoint {checkpoint.tree_size}: row differs from its signed note",
                ),
            )
        checkpoints[opened.size] = opened.root_hash
    result = _walk(checkpoints)
    if result.ok:
        head = AuditHead.objects.values_list("seq", flat=True).get(pk=1)
        if head != result.events:
            result = Result(
                False,
                result.events,
                len(checkpoints),
                result.events + 1,
                f"missing: the log's head says {head} events, {result.events} were found",
            )
        elif checkpoints and max(checkpoints) > result.events:
            result = Result(
                False,
                result.events,
                len(checkpoints),
                result.events + 1,
                f"missing: a checkpoint covers {max(checkpoints)} events, only {result.events} remain",
            )
    return _done(started, record, result)


def _walk(checkpoints: dict[int, bytes]) -> Result:
    tree = merkle.CompactRange()
    previous_chain = GENESIS_CHAIN
    rows = by_seq(AuditEvent.objects.all(), "body", "leaf_hash", "chain_hash")
    expected = 0
    verified = 0
    for seq, body, stored_leaf, stored_chain in rows:
        expected += 1
        body = bytes(body)
        if seq != expected:
            return Result(
                False, expected - 1, verified, expected, f"missing: seq {expected} is not in the log"
            )
        problem = _check_body(seq, body)
        if problem:
            return Result(False, expected - 1, verified, seq, problem)
        leaf = leaf_hash(body)
        if leaf != bytes(stored_leaf):
            return Result(
                False, expected - 1, verified, seq, f"altered: seq {seq} does not match its leaf hash"
            )
        previous_chain = chain_hash(previous_chain, leaf)
        if previous_chain != bytes(stored_chain):
            return Result(False, expected - 1, verified, seq, f"altered: the chain breaks at seq {seq}")
        tree.append(leaf)
        if seq in checkpoints:
            if tree.root() != checkpoints[seq]:
                return Result(
                    False,
                    expected,
                    verified,
                    seq,
                    f"altered: the Merkle root at {seq} differs from its signed checkpoint",
                )
            verified += 1
    return Result(True, expected, verified)


def _check_body(seq: int, body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"altered: seq {seq} is not JSON"
    if not isinstance(parsed, dict):
        return f"altered: seq {seq} is not a JSON object"
    if parsed.get("seq") != seq:
        return f"reordered: the event stored at seq {seq} says it is seq {parsed.get('seq')}"
    # Bodies hold no floats and only ASCII keys, so sorted compact JSON usually is their canonical form
    # already (quick to check); anything else goes to the full RFC 8785 encoder.
    quick = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if quick != body and rfc8785.dumps(parsed) != body:
        return f"altered: seq {seq} is not in canonical form"
    return ""


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
