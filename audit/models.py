"""The append-only audit log.

Each event's body is the RFC 8785 canonical JSON of the event, stored byte for byte as it was hashed;
the other columns are projections of the body for querying. Positions (`seq`) are assigned under the lock
on the single AuditHead row, inside the writing transaction, so they have no gap and no fork.
"""

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    SERVICE_ACCOUNT = "service_account", "Service account"
    SYSTEM = "system", "System"


class Action(models.TextChoices):
    ASSET_CREATED = "asset.created"
    ASSET_UPDATED = "asset.updated"
    ASSET_ARCHIVED = "asset.archived"
    VERSION_CREATED = "version.created"
    VERSION_UPDATED = "version.updated"
    EVALUATION_ADDED = "evaluation.added"
    LINEAGE_ADDED = "lineage.added"
    STAGE_SET = "stage.set"
    GRANT_ADDED = "grant.added"
    GRANT_REMOVED = "grant.removed"
    ACCOUNT_CREATED = "account.created"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED = "login.locked"
    LOGOUT = "logout"
    POLICY_CREATED = "policy.created"
    POLICY_UPDATED = "policy.updated"
    POLICY_DELETED = "policy.deleted"
    PROMOTION_REQUESTED = "promotion.requested"
    PROMOTION_APPROVED = "promotion.approved"
    PROMOTION_QUORUM_REACHED = "promotion.quorum_reached"
    PROMOTION_REJECTED = "promotion.rejected"
    PROMOTION_CANCELLED = "promotion.cancelled"
    PROMOTION_SUPERSEDED = "promotion.superseded"
    PROMOTION_EXPIRED = "promotion.expired"
    PROMOTION_FAILED = "promotion.failed"
    PROMOTION_APPLIED = "promotion.applied"
    TEAM_MEMBER_ADDED = "team.member_added"
    TEAM_MEMBER_REMOVED = "team.member_removed"
    USER_UPDATED = "user.updated"
    PASSWORD_CHANGED = "account.password_changed"
    AUDIT_FORK_ACCEPTED = "audit.fork_accepted"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    WEBHOOK_FAILING = "webhook.failing"
    WEBHOOK_RECOVERED = "webhook.recovered"
    NOTIFICATION_SETTINGS_UPDATED = "notifications.settings_updated"
    TRUST_POLICY_CREATED = "trust_policy.created"
    TRUST_POLICY_UPDATED = "trust_policy.updated"
    TRUST_POLICY_DELETED = "trust_policy.deleted"
    TOKEN_EXCHANGED = "token.exchanged"
    TOKEN_EXCHANGE_REFUSED = "token.exchange_refused"


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The audit log is append-only: update is refused.")

    def delete(self):
        raise AppendOnlyError("The audit log is append-only: delete is refused.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The audit log is append-only: bulk_update is refused.")


class AppendOnlyModel(models.Model):
    """A model whose rows can be inserted and never changed or deleted through the ORM."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")


class AuditEvent(AppendOnlyModel):
    """One recorded change: who did what to which object, when, from where, with before and after."""

    seq = models.PositiveBigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    # Actors and targets are kept as values, not foreign keys: the record outlives what it names.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_repr = models.CharField(max_length=200)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    action = models.CharField(max_length=64)  # an Action value; no choices, so new actions need no migration
    target_kind = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300)
    asset_id = models.BigIntegerField(null=True, blank=True)
    changes = models.JSONField(default=dict)
    source = models.CharField(max_length=10)
    context = models.JSONField(default=dict)
    body = models.BinaryField()
    leaf_hash = models.BinaryField(max_length=32)
    chain_hash = models.BinaryField(max_length=32)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["asset_id", "seq"], name="audit_asset_seq"),
            models.Index(fields=["actor_id", "seq"], name="audit_actor_seq"),
            models.Index(fields=["action", "seq"], name="audit_action_seq"),
            models.Index(fields=["target_kind", "target_id"], name="audit_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_repr} by {self.actor_repr}"


class AuditHead(models.Model):
    """The single row that holds the log's tail; locking it serialises appends."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    chain_hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_head_singleton")]

    def __str__(self) -> str:
        return f"audit head at seq {self.seq}"


class MerkleNode(AppendOnlyModel):
    """The hash of a full, aligned subtree of 2**level leaves (level >= 8): proofs read O(log n) rows."""

    level = models.PositiveSmallIntegerField()
    index = models.PositiveBigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["level", "index"], name="merkle_node_unique")]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class Checkpoint(AppendOnlyModel):
    """A signed statement of the log's size and Merkle root (C2SP tlog-checkpoint, Ed25519 signed note)."""

    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    chain_hash = models.BinaryField(max_length=32)
    note = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tree_size"]

    def __str__(self) -> str:
        return f"checkpoint at {self.tree_size}"


class VerificationRun(AppendOnlyModel):
    """The outcome of one run of audit_verify, shown to auditors."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    events = models.PositiveBigIntegerField()
    checkpoints = models.PositiveIntegerField()
    first_bad_seq = models.PositiveBigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"verification {'ok' if self.ok else 'FAILED'} at {self.finished_at}"
