"""People, service accounts, teams, and API tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.usernames import accounts_named


class GlobalRole(models.TextChoices):
    NONE = "", "None"
    ADMIN = "admin", "Registry admin"
    AUDITOR = "auditor", "Auditor"


class User(AbstractUser):
    """A person, or a service account that CI uses (never logs in to the browser, never reviews)."""

    global_role = models.CharField(max_length=10, choices=GlobalRole.choices, blank=True, default="")
    is_service_account = models.BooleanField(default=False)

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.username

    def clean(self) -> None:
        super().clean()
        # Sign-in finds accounts by their sign-in name (case, width and surrounding spaces ignored), so two
        # accounts must not share one: neither could sign in by password.
        if accounts_named(self.username, exclude_pk=self.pk):
            raise ValidationError(
                {"username": "An account with this name already exists (ignoring case and character width)."}
            )

    # For templates, which cannot call functions: the rules themselves are in accounts/permissions.py.
    @property
    def is_registry_admin(self) -> bool:
        from accounts.permissions import is_admin

        return is_admin(self)

    @property
    def is_auditor(self) -> bool:
        from accounts.permissions import is_auditor

        return is_auditor(self)

    @property
    def reads_everything(self) -> bool:
        from accounts.permissions import reads_everything

        return reads_everything(self)

    @property
    def display_name(self) -> str:
        """The one name the page header shows: the full name if there is one, else the username."""
        return self.get_full_name() or self.username

    @property
    def role_label(self) -> str:
        """The global role as a small label beside the name; none when the name says it already (an
        account named "admin" is not shown as "admin admin")."""
        label = "admin" if self.is_registry_admin else "auditor" if self.is_auditor else ""
        return "" if label == self.display_name.casefold() else label


class Team(Group):
    """A group of people that owns assets and can be granted roles on them."""

    class Meta:
        proxy = True


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Register versions, evaluations, lineage and set unprotected stages"
    PROMOTE = "promote", "Request, cancel and apply promotions"
    REVIEW = "review", "Approve or reject promotions (people only)"
    MANAGE = "manage", "Manage grants, service accounts and tokens"


class ApiToken(models.Model):
    """A bearer token: only its SHA-256 is stored, with a lookup id and the last four characters."""

    PREFIX = "mgr"

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=12, unique=True)
    hashed = models.CharField(max_length=64)
    last4 = models.CharField(max_length=4)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A token minted for an OIDC ID token (accounts/oidc.py): the issuer, subject, trust policy and matched
    # claims, carried into the audit context of everything done with it. Empty for ordinary tokens.
    federation = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.PREFIX}_{self.lookup}_…{self.last4} ({self.name})"

    @staticmethod
    def hash(token: str) -> str:
        # Tokens carry 238 bits of randomness, so a fast hash is enough: nothing to brute-force.
        return hashlib.sha256(token.encode()).hexdigest()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class TrustProvider(models.TextChoices):
    GITHUB = "github", "GitHub Actions"
    GITLAB = "gitlab", "GitLab CI"
    OTHER = "oidc", "Another OIDC issuer"


class TrustPolicy(models.Model):
    """Which CI jobs may act as a service account: an OIDC issuer, an audience and the claims its ID token
    must carry, and the scopes of the short-lived token it gets in exchange (accounts/oidc.py)."""

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=10, choices=TrustProvider.choices)
    issuer = models.CharField(max_length=300)
    audience = models.CharField(max_length=200)
    # claim name -> the exact value it must have (strings; GitLab's booleans are "true"/"false").
    conditions = models.JSONField(default=dict)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trust_policies"
    )
    scopes = models.JSONField(default=list)
    token_lifetime_seconds = models.PositiveIntegerField(default=900)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["issuer"], name="trust_policy_issuer")]

    def __str__(self) -> str:
        return self.name


class IdTokenUse(models.Model):
    """An ID token already exchanged, kept until it expires: a second exchange of it is a replay.

    In the database, so every worker of every server sees it; `key` is SHA-256 of issuer and jti.
    """

    key = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


class ExternalIdentity(models.Model):
    """A person's account at the identity provider (issuer and subject) linked to their registry account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_unique")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
