"""The Idempotency-Key protocol of promotion requests: the first answer given to a caller's key is kept, in
the same transaction as the request it made, and a retry with the same key and body gets that answer again.

The API view only reads the header; everything else about keys and kept answers is here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import rfc8785
from django.db import IntegrityError

from approvals.models import IdempotencyRecord, PromotionRequest
from core.compiled import CompiledQuery
from core.exceptions import Unprocessable


@dataclass(frozen=True)
class IdempotencyClaim:
    """The caller's Idempotency-Key, the fingerprint of its body, and how to render the response to keep."""

    key: str
    fingerprint: str
    render: Callable[[PromotionRequest], dict]

    @classmethod
    def for_body(
        cls, *, key: str, body: object, render: Callable[[PromotionRequest], dict]
    ) -> IdempotencyClaim:
        """The claim for a request body as received (its canonical JSON, RFC 8785, is what is compared)."""
        return cls(key=key, fingerprint=hashlib.sha256(rfc8785.dumps(body)).hexdigest(), render=render)


@dataclass(frozen=True)
class KeptAnswer:
    """The answer kept for a key: the request it made, the response body and status, and whether this is a
    replay of an earlier answer."""

    promotion_id: int
    body: dict
    status: int
    replayed: bool


def _answer(record: IdempotencyRecord, *, replayed: bool) -> KeptAnswer:
    return KeptAnswer(
        promotion_id=record.promotion_id,
        body=record.response_body,
        status=record.response_status,
        replayed=replayed,
    )


# Read before every promotion request and after it: the SQL compiled once per process.
_RECORD = CompiledQuery(
    lambda *, account_id, key: IdempotencyRecord.objects.filter(account_id=account_id, key=key)
)


def _record(account, key: str) -> IdempotencyRecord | None:
    """The account's record for key (unique together), or None."""
    found = _RECORD.objects("record", {}, limit=1, account_id=account.pk, key=key)
    return found[0] if found else None


def kept_answer(*, account, claim: IdempotencyClaim) -> KeptAnswer | None:
    """The answer already given to account for claim's key, or None; 422 if the key came with another body."""
    record = _record(account, claim.key)
    if record is None:
        return None
    if record.fingerprint != claim.fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was used with another body; use a new key for a new request.",
            type="idempotency-key-reused",
        )
    return _answer(record, replayed=True)


def claim_key(*, account, claim: IdempotencyClaim) -> IdempotencyRecord:
    """Take the key, first thing in the service's transaction: a concurrent request with the same key waits on
    this row (and fails on its unique constraint when this one commits)."""
    return IdempotencyRecord.objects.create(account=account, key=claim.key, fingerprint=claim.fingerprint)


def keep_answer(record: IdempotencyRecord, *, claim: IdempotencyClaim, promotion: PromotionRequest) -> None:
    """Keep the answer to the key, in the same transaction as the request it made."""
    record.promotion = promotion
    record.response_body = claim.render(promotion)
    record.save(update_fields=["promotion", "response_body"])


def answer_once(*, account, claim: IdempotencyClaim, act: Callable[[], object]) -> KeptAnswer:
    """Run act, a service that takes claim's key in its transaction, and return the answer it kept; when a
    concurrent request with the same key won the race, the answer that request kept, as a replay."""
    try:
        act()
    except IntegrityError:
        kept = kept_answer(account=account, claim=claim)
        if kept is None:
            raise
        return kept
    record = _record(account, claim.key)
    if record is None:  # act returned without taking the key: not a request this protocol answers
        raise IdempotencyRecord.DoesNotExist("IdempotencyRecord matching query does not exist.")
    return _answer(record, replayed=False)
