"""Periodic expiry of promotion requests, and signed callbacks to CI when a request is decided."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.request
import uuid

from celery import shared_task
from django.conf import settings

from core.source import Source

logger = logging.getLogger(__name__)


@shared_task
def expire_due_promotions() -> int:
    from approvals.services import promotion_expire_due

    return promotion_expire_due(source=Source.task())


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature: base64 HMAC-SHA256 over "id.timestamp.body", prefixed "v1,"."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


@shared_task(bind=True, max_retries=8)
def deliver_callback(self, promotion_id: int) -> None:
    """POST the decided request to its callback_url; retried with exponential backoff when it fails."""
    from approvals.api.serializers import PromotionOut
    from approvals.models import PromotionRequest

    promotion = PromotionRequest.objects.select_related(
        "asset", "version", "stage", "requested_by", "base_version", "superseded_by"
    ).get(pk=promotion_id)
    body = json.dumps(
        {"type": f"promotion.{promotion.status}", "data": PromotionOut(promotion).data}
    ).encode()
    message_id = f"msg_{promotion.pk}_{promotion.revision}"
    timestamp = int(time.time())
    request = urllib.request.Request(
        promotion.callback_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(settings.WEBHOOK_SECRET, message_id, timestamp, body),
            "User-Agent": "model-registry-callback/1",
            "X-Request-ID": uuid.uuid4().hex,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            response.read(1024)
    except Exception as exc:  # any failure of the receiver: retry later, never fail the decision
        logger.warning("callback for promotion %s failed: %s", promotion_id, exc)
        if not self.request.is_eager:
            raise self.retry(exc=exc, countdown=min(3600, 2**self.request.retries * 30)) from None
