"""E-mail to people about promotions and webhooks: the e-mail outbox, and what each person chose to get."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Kind(models.TextChoices):
    """What an e-mail is about; each person may turn each kind off (NotificationSettings)."""

    REVIEW_REQUESTED = "review_requested", "A promotion needs your review"
    DECIDED = "decided", "A promotion you requested or manage was decided"
    EXPIRING = "expiring", "A promotion is about to expire"
    WEBHOOK_FAILING = "webhook_failing", "A webhook subscription is failing"


class EmailNotification(models.Model):
    """One e-mail to one person, written in the transaction of the change it reports and sent afterwards by
    a worker (notifications/tasks.py), with backoff. (kind, reference, recipient) is unique: the same person
    is never sent the same notice twice for one event."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    address = models.EmailField(max_length=254)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What the notice is about, e.g. "promotion:12", "promotion:12:rejected", "event:345" (an audit seq).
    reference = models.CharField(max_length=100)
    promotion = models.ForeignKey(
        "approvals.PromotionRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "reference", "recipient"], name="notification_once"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["promotion", "kind"], name="notification_promotion"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.address} ({self.status})"


class NotificationSettings(models.Model):
    """Which e-mails a person wants; a person without a row gets every kind."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_settings",
    )
    review_requested = models.BooleanField(default=True)
    decided = models.BooleanField(default=True)
    expiring = models.BooleanField(default=True)
    webhook_failing = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"notification settings of {self.user}"
