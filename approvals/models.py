"""Promotion policies, promotion requests, their reviews, and idempotency records for the CI API."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q

from registry.models import Asset, AssetVersion, Stage


class Policy(models.Model):
    """What it takes to promote into a stage: for one asset, for all assets of a kind, or for all assets."""

    kind = models.CharField(max_length=10, blank=True, help_text="Empty: every kind.")
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.CASCADE, related_name="policies")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="policies")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    reviewer_teams = models.ManyToManyField(Group, blank=True, related_name="+")
    allow_author_approval = models.BooleanField(default=False)
    gates = models.JSONField(default=list, blank=True)
    expiry_hours = models.PositiveIntegerField(default=7 * 24)
    apply_on_approval = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "stage"], condition=Q(asset__isnull=False), name="policy_unique_asset_stage"
            ),
            models.UniqueConstraint(
                fields=["kind", "stage"], condition=Q(asset__isnull=True), name="policy_unique_scope_stage"
            ),
            models.CheckConstraint(condition=Q(required_approvals__gte=1), name="policy_needs_an_approval"),
        ]

    def __str__(self) -> str:
        return f"policy for {self.scope} → {self.stage}"

    @property
    def scope(self) -> str:
        if self.asset_id:
            return str(self.asset)
        return f"every {self.kind}" if self.kind else "every asset"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    SUPERSEDED = "superseded", "Superseded"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"


OPEN_STATUSES = (Status.PENDING, Status.APPROVED)


class PromotionRequest(models.Model):
    """A request to put one version of an asset into a stage, and where it stands."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="promotions")
    version = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="promotions")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    status_reason = models.TextField(blank=True)
    # Bumped on every change: the ETag that CI polls with.
    revision = models.PositiveIntegerField(default=1)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    rollback = models.BooleanField(default=False)
    ci = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=1000, blank=True)
    policy = models.ForeignKey(Policy, null=True, on_delete=models.SET_NULL, related_name="+")
    # The policy as it was when the request was made: a later edit can only make the request harder.
    policy_snapshot = models.JSONField(default=dict)
    base_version = models.ForeignKey(
        AssetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["asset", "stage", "status"], name="promotion_open_for_stage"),
            models.Index(fields=["status", "expires_at"], name="promotion_due"),
        ]

    def __str__(self) -> str:
        return f"promotion #{self.pk}: {self.version} → {self.stage}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Review(models.Model):
    """One person's decision on a promotion request; a person decides once, whatever their teams."""

    promotion = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["promotion", "reviewer"], name="review_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} {self.decision}s #{self.promotion_id}"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, per caller, replayed for retries."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    promotion = models.ForeignKey(PromotionRequest, null=True, on_delete=models.CASCADE, related_name="+")
    response_status = models.PositiveSmallIntegerField(default=201)
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.key}"


class OutboxMessage(models.Model):
    """One event to leave the registry: one message to one URL, written in the transaction of the change it
    reports, delivered afterwards by a worker (approvals/tasks.py), at least once, with the same webhook id on
    every attempt. The outbox, not the broker, is the record of what is still to be sent."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    webhook_id = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=100)
    url = models.CharField(max_length=2048)
    payload = models.BinaryField()
    label = models.CharField(max_length=200, help_text='What it is, for logs: "callback for promotion 7".')
    # The id of the subscription (webhooks app) it is for, signed with its secret; empty: a promotion
    # callback, signed with WEBHOOK_SECRET.
    webhook = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_due"),
            models.Index(fields=["webhook", "id"], name="outbox_webhook"),  # a subscription's deliveries
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.status})"


class OutboxAttempt(models.Model):
    """One delivery attempt of an outbox message: when, the receiver's status code, how long, what failed."""

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="delivery_attempts")
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.message.label} at {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"
