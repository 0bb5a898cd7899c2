"""Periodic expiry of promotion requests, and the outbox: signed callbacks to CI when a request is decided.

A callback is written to the outbox (OutboxMessage) in the transaction of the decision, and sent afterwards:
by the Celery task deliver_outbox, enqueued when that transaction commits, or, without a broker, on a few
background threads of this process. A message that is not delivered is tried again with backoff until it
succeeds or runs out of attempts; sweep_outbox (periodic) re-enqueues due messages whose task was lost.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import hashlib
import hmac
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from approvals.models import OutboxAttempt, OutboxMessage, PromotionRequest
from approvals.payloads import callback_body
from core import netguard
from core.outage import after_commit
from core.source import Source

logger = logging.getLogger(__name__)

# Attempts per message, and the wait after the n-th failure: settings.OUTBOX_FIRST_RETRY_SECONDS (1 min),
# doubling, at most 6 h, ±20 % (about 20 h from the first attempt to the twelfth).
MAX_ATTEMPTS = 12
LONGEST_RETRY_SECONDS = 6 * 3600
# A retry due within this many seconds is enqueued with a countdown; a later one is left to sweep_outbox, so
# that the broker and the workers never hold tasks for hours (Redis would hand them out again after its
# visibility timeout).
COUNTDOWN_LIMIT_SECONDS = 300


@shared_task
def expire_due_promotions() -> int:
    from approvals.services import promotion_expire_due  # services import this module: imported when run

    return promotion_expire_due(source=Source.task())


def sign(secret: str | bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: base64 HMAC-SHA256 over "id.timestamp.body", prefixed "v1,".

    secret is the HMAC key: bytes as they are (a subscription's key, decoded from its "whsec_" form), or a
    string used as its UTF-8 bytes (the promotion callback secret, WEBHOOK_SECRET, as docs/ci.md says)."""
    key = secret.encode() if isinstance(secret, str) else secret
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the attempts-th failed attempt: exponential, capped, with jitter."""
    seconds = min(LONGEST_RETRY_SECONDS, settings.OUTBOX_FIRST_RETRY_SECONDS * 2 ** (attempts - 1))
    return dt.timedelta(seconds=seconds * random.uniform(0.8, 1.2))


# Subscriptions ------------------------------------------------------------------------------------------
# Messages with `webhook` set belong to a subscription of the webhooks app, a layer above this one, which this
# module may not import. That app registers two hooks at start-up (WebhooksConfig.ready): the key that signs a
# subscription's messages, looked up at each attempt (the secret stays in one row, the subscription's, and a
# deleted subscription's messages are refused instead of sent), and a listener told how each of its messages
# ended (delivered, or failed for good), to mark the subscription failing or recovered.
_signing_keys: Callable[[OutboxMessage], bytes | None] | None = None
_outcome_listeners: list[Callable[[OutboxMessage], None]] = []


def set_signing_keys(lookup: Callable[[OutboxMessage], bytes | None]) -> None:
    """Have lookup(message) give the HMAC key of a subscription's message (None: it may not be sent)."""
    global _signing_keys
    _signing_keys = lookup


def on_outcome(listener: Callable[[OutboxMessage], None]) -> None:
    """Have listener(message) called when a subscription's message is delivered or fails for good, in the
    transaction that records it (the message row is locked)."""
    if listener not in _outcome_listeners:
        _outcome_listeners.append(listener)


def _signing_key(message: OutboxMessage) -> str | bytes:
    if not message.webhook:
        return settings.WEBHOOK_SECRET
    key = _signing_keys(message) if _signing_keys is not None else None
    if key is None:
        raise netguard.Refused(f"subscription {message.webhook} no longer exists")
    return key


# Writing -----------------------------------------------------------------------------------------------


def outbox_callback(promotion: PromotionRequest) -> OutboxMessage:
    """Write the callback for a decided request to the outbox, in the caller's transaction, and have it
    delivered once that transaction commits. Nothing is written, and nothing sent, on rollback."""
    message = OutboxMessage.objects.create(
        webhook_id=f"msg_{promotion.pk}_{promotion.revision}",
        event_type=f"promotion.{promotion.status}",
        url=promotion.callback_url,
        payload=callback_body(promotion),
        label=f"callback for promotion {promotion.pk}",
        next_attempt_at=timezone.now(),
    )
    after_commit(lambda: enqueue(message.pk), what="outbox enqueue")
    return message


def enqueue(message_id: int, *, countdown: float = 0) -> None:
    """Have a worker deliver the message: through the broker, or without a broker on a background thread.
    A broker that cannot take it only delays delivery: the message stays due, and the sweep finds it."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if not countdown:
            _submit(message_id)
        return
    try:
        deliver_outbox.apply_async((message_id,), countdown=countdown)
    except Exception as exc:  # the change is committed; the outbox row is the record of what is owed
        logger.warning("outbox message %s not enqueued (the sweep will): %s", message_id, exc)


# Delivering --------------------------------------------------------------------------------------------


def _send(message: OutboxMessage) -> int:
    """One POST of the message, signed, to its URL; the receiver's status code.

    The URL and its addresses are checked now (the allow lists may have changed, and a name may now resolve
    elsewhere), and the connection goes to an address just checked. Raises netguard.Refused when the registry
    may not send there, netguard.SendFailed when the receiver could not be reached in time.
    """
    started = time.monotonic()
    key = _signing_key(message)
    target, addresses = netguard.check(
        message.url,
        allowed_hosts=settings.CALLBACK_ALLOWED_HOSTS,
        allowed_networks=netguard.parse_networks(settings.CALLBACK_ALLOWED_NETWORKS),
        timeout=settings.WEBHOOK_TIMEOUT,
    )
    body = bytes(message.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message.webhook_id, timestamp, body),
        "User-Agent": "model-registry-callback/1",
        "X-Request-ID": uuid.uuid4().hex,
    }
    left = settings.WEBHOOK_TIMEOUT - (time.monotonic() - started)
    if left <= 0:
        raise netguard.SendFailed(f"no answer within {settings.WEBHOOK_TIMEOUT} s")
    return netguard.post(target, addresses, body, headers, timeout=left)


def _attempt(message: OutboxMessage) -> tuple[bool | None, int | None, str]:
    """_send, logged: (True when delivered (2xx), False when worth retrying, None when refused for good), the
    status code, and the error."""
    try:
        status = _send(message)
    except (netguard.NotResolved, netguard.SendFailed) as exc:  # a name may resolve later
        logger.warning("%s failed: %s", message.label, exc)
        return False, None, str(exc)
    except netguard.Refused as exc:
        logger.warning("%s refused, not sent: %s", message.label, exc)
        return None, None, f"refused: {exc}"
    if 200 <= status < 300:
        return True, status, ""
    error = f"answered {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    logger.warning("%s failed: %s", message.label, error)
    return False, status, error


def deliver_message(message_id: int, *, now: dt.datetime | None = None) -> str | None:
    """Attempt one outbox message if it is pending and due at now; its status afterwards, or None when it was
    not attempted (not due, already done, or being sent by another worker).

    The row stays locked (skip_locked elsewhere) until the attempt is recorded: two workers never send the
    same message at once, and a worker killed mid-attempt leaves it due, to be sent again with the same id.
    """
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status=OutboxMessage.State.PENDING)
            .first()
        )
        now = now or timezone.now()
        if message is None or message.next_attempt_at > now:
            return None
        started = time.monotonic()
        outcome, status_code, error = _attempt(message)
        latency = round((time.monotonic() - started) * 1000)
        OutboxAttempt.objects.create(
            message=message, at=now, status_code=status_code, latency_ms=latency, error=error
        )
        message.attempts += 1
        message.last_error = error
        if outcome:
            message.status, message.delivered_at = OutboxMessage.State.DELIVERED, now
        elif outcome is None or message.attempts >= MAX_ATTEMPTS:
            message.status = OutboxMessage.State.FAILED
            logger.warning("%s failed for good after %s attempts", message.label, message.attempts)
        else:
            message.next_attempt_at = now + retry_delay(message.attempts)
        message.save(update_fields=["attempts", "last_error", "status", "delivered_at", "next_attempt_at"])
        if message.webhook and message.status != OutboxMessage.State.PENDING:
            for listener in _outcome_listeners:
                listener(message)
    wait = (message.next_attempt_at - now).total_seconds()
    if message.status == OutboxMessage.State.PENDING and wait <= COUNTDOWN_LIMIT_SECONDS:
        enqueue(message.pk, countdown=max(wait, 0))
    return message.status


@shared_task
def deliver_outbox(message_id: int) -> str | None:
    """Deliver one outbox message when it is due (a message already sent, or not due yet, is left alone)."""
    return deliver_message(message_id)


@shared_task
def sweep_outbox(limit: int = 1000) -> int:
    """Enqueue every due outbox message (periodic): a task lost by the broker or a worker only delays it."""
    due = OutboxMessage.objects.filter(
        status=OutboxMessage.State.PENDING, next_attempt_at__lte=timezone.now()
    )
    message_ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    for message_id in message_ids:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            deliver_message(message_id)
        else:
            enqueue(message_id)
    return len(message_ids)


# Without a broker, messages go to a few threads of this process after the commit, so that the request that
# made the decision never waits for (or times) the receiver. One attempt each; a failed one stays due in the
# outbox for sweep_outbox.
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pending: set[concurrent.futures.Future] = set()
_pending_lock = threading.Lock()


def _deliver_in_background(message_id: int) -> None:
    try:
        deliver_message(message_id)
    except Exception:  # the thread must survive any failure
        logger.exception("outbox message %s failed", message_id)
    finally:
        connections.close_all()  # this thread's connections only


def _submit(message_id: int) -> None:
    global _pool
    with _pending_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="callback")
        future = _pool.submit(_deliver_in_background, message_id)
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: concurrent.futures.Future) -> None:
    with _pending_lock:
        _pending.discard(future)


def wait_for_background_callbacks(timeout: float) -> bool:
    """Wait until the background deliveries started so far have finished; False if some still run."""
    with _pending_lock:
        running = list(_pending)
    _, not_done = concurrent.futures.wait(running, timeout=timeout)
    return not not_done
