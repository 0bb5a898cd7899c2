"""Periodic expiry of promotion requests, and signed callbacks to CI when a request is decided."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import logging
import threading
import time
import uuid

from celery import shared_task
from django.conf import settings
from django.db import connections, transaction

from approvals.models import PromotionRequest
from approvals.payloads import callback_body
from core import netguard
from core.source import Source

logger = logging.getLogger(__name__)


@shared_task
def expire_due_promotions() -> int:
    from approvals.services import promotion_expire_due  # services import this module: imported when run

    return promotion_expire_due(source=Source.task())


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: base64 HMAC-SHA256 over "id.timestamp.body", prefixed "v1,"."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def send_callback(promotion_id: int) -> int:
    """One delivery: POST the decided request, signed, to its callback_url; the receiver's status code.

    The URL and its addresses are checked again now (the allow lists may have changed, and a name may now
    resolve elsewhere), and the connection goes to an address just checked. Raises netguard.Refused when the
    registry may not send there, netguard.SendFailed when the receiver could not be reached in time.
    """
    promotion = PromotionRequest.objects.select_related(
        "asset", "version", "stage", "requested_by", "base_version", "superseded_by"
    ).get(pk=promotion_id)
    started = time.monotonic()
    target, addresses = netguard.check(
        promotion.callback_url,
        allowed_hosts=settings.CALLBACK_ALLOWED_HOSTS,
        allowed_networks=netguard.parse_networks(settings.CALLBACK_ALLOWED_NETWORKS),
        timeout=settings.WEBHOOK_TIMEOUT,
    )
    body = callback_body(promotion)
    message_id = f"msg_{promotion.pk}_{promotion.revision}"
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(settings.WEBHOOK_SECRET, message_id, timestamp, body),
        "User-Agent": "model-registry-callback/1",
        "X-Request-ID": uuid.uuid4().hex,
    }
    left = settings.WEBHOOK_TIMEOUT - (time.monotonic() - started)
    if left <= 0:
        raise netguard.SendFailed(f"no answer within {settings.WEBHOOK_TIMEOUT} s")
    return netguard.post(target, addresses, body, headers, timeout=left)


def attempt_callback(promotion_id: int) -> bool | None:
    """send_callback, logged: True when delivered (2xx), False when worth retrying, None when refused."""
    try:
        status = send_callback(promotion_id)
    except (netguard.NotResolved, netguard.SendFailed) as exc:
        logger.warning("callback for promotion %s failed: %s", promotion_id, exc)
        return False
    except netguard.Refused as exc:
        logger.warning("callback for promotion %s refused, not sent: %s", promotion_id, exc)
        return None
    if 200 <= status < 300:
        return True
    if 300 <= status < 400:
        logger.warning(
            "callback for promotion %s failed: answered %s (redirects are not followed)", promotion_id, status
        )
    else:
        logger.warning("callback for promotion %s failed: answered %s", promotion_id, status)
    return False


@shared_task(bind=True, max_retries=8)
def deliver_callback(self, promotion_id: int) -> None:
    """POST the decided request to its callback_url; a failure is retried with backoff, a refusal is not."""
    if attempt_callback(promotion_id) is False and not self.request.is_eager:
        raise self.retry(countdown=min(3600, 2**self.request.retries * 30))


# Without a broker, callbacks go to a few threads of this process after the commit, so that the request that
# made the decision never waits for (or times) the receiver. One attempt each, no retry.
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pending: set[concurrent.futures.Future] = set()
_pending_lock = threading.Lock()


def _deliver_in_background(promotion_id: int) -> None:
    try:
        attempt_callback(promotion_id)
    except Exception:  # the thread must survive any failure, e.g. the promotion row gone
        logger.exception("callback for promotion %s failed", promotion_id)
    finally:
        connections.close_all()  # this thread's connections only


def _submit(promotion_id: int) -> None:
    global _pool
    with _pending_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="callback")
        future = _pool.submit(_deliver_in_background, promotion_id)
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: concurrent.futures.Future) -> None:
    with _pending_lock:
        _pending.discard(future)


def deliver_callback_after_commit(promotion_id: int) -> None:
    """When the current transaction commits, deliver the promotion's callback: through the broker to a Celery
    worker, or without a broker on a background thread. Never inside the caller's request; nothing on
    rollback."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: _submit(promotion_id))
    else:
        deliver_callback.delay_on_commit(promotion_id)


def wait_for_background_callbacks(timeout: float) -> bool:
    """Wait until the background deliveries started so far have finished; False if some still run."""
    with _pending_lock:
        running = list(_pending)
    _, not_done = concurrent.futures.wait(running, timeout=timeout)
    return not not_done
