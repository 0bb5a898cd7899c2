"""Webhook subscriptions: a URL that receives the audit events it asks for, signed with its own secret.

Each event a subscription asks for is written to the approvals outbox (approvals.models.OutboxMessage, its
`webhook` column holding the subscription's id) in the transaction of the change, and delivered from there
(approvals/tasks.py): at least once, retried with backoff, every attempt logged.
"""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from django.db import models

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" and the base64 of 32 random bytes (the HMAC key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSubscription(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"  # deliveries succeed, or none has failed for good yet
        FAILING = "failing"  # a message failed for good; new events are still queued, a success recovers it

    url = models.CharField(max_length=1000)
    # Audit action names (audit.models.Action values), or ["*"] for every event of the asset(s).
    events = models.JSONField(default=list)
    # None: every asset the creator may see (admins only).
    asset = models.ForeignKey(
        "registry.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="webhooks"
    )
    description = models.CharField(max_length=500, blank=True)
    active = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Kept in clear: the worker signs every message with it. Shown to its creator once, in the create answer;
    # never in an audit event, a list, or a page after that.
    secret = models.CharField(max_length=100, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["active", "asset"], name="webhook_fanout")]

    def __str__(self) -> str:
        return f"webhook {self.pk}"

    @property
    def signing_key(self) -> bytes:
        """The HMAC key: the secret's base64 part, decoded (as the standardwebhooks libraries do)."""
        return base64.b64decode(self.secret.removeprefix(SECRET_PREFIX))

    @property
    def asset_ref(self) -> str | None:
        return f"{self.asset.kind}/{self.asset.name}" if self.asset_id else None
