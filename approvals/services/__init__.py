"""approvals' services: every write of the app, one durable, audited transaction each.

- policies.py: policy_create, policy_update, policy_delete
- promotions.py: promotion_request, _approve, _reject, _cancel, _apply, _expire_if_due, _expire_due
- idempotency.py: the Idempotency-Key protocol of promotion requests

The names below are the app's public surface; import them from here.
"""

from approvals.services.idempotency import IdempotencyClaim, KeptAnswer, answer_once, kept_answer
from approvals.services.policies import (
    MAX_EXPIRY_HOURS,
    POLICY_FIELDS,
    policy_create,
    policy_delete,
    policy_update,
)
from approvals.services.promotions import (
    promotion_apply,
    promotion_approve,
    promotion_cancel,
    promotion_expire_due,
    promotion_expire_if_due,
    promotion_reject,
    promotion_request,
)

__all__ = [
    "MAX_EXPIRY_HOURS",
    "POLICY_FIELDS",
    "IdempotencyClaim",
    "KeptAnswer",
    "answer_once",
    "kept_answer",
    "policy_create",
    "policy_delete",
    "policy_update",
    "promotion_apply",
    "promotion_approve",
    "promotion_cancel",
    "promotion_expire_due",
    "promotion_expire_if_due",
    "promotion_reject",
    "promotion_request",
]
