"""Where a change came from: the channel, the credential and what the request tells about its origin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db import models


class Channel(models.TextChoices):
    WEB = "web", "Web"
    API = "api", "API"
    TASK = "task", "Task"
    CLI = "cli", "Command line"
    MLFLOW = "mlflow", "MLflow client"


class CredentialKind(models.TextChoices):
    SESSION = "session", "Signed-in browser session"
    TOKEN = "token", "API token"


@dataclass(frozen=True)
class Credential:
    """What the caller proved its identity with: a signed-in session, or one API token (its id and prefix)."""

    kind: CredentialKind
    token_id: int | None = None
    token_prefix: str = ""  # mgr_<lookup>: public, names the token without its secret
    # A token minted for an OIDC ID token: the issuer, subject, trust policy and matched claims of the CI job.
    federation: dict | None = None

    @classmethod
    def of_request(cls, request) -> Credential | None:
        """The request's credential: its API token if it came with one, else its session; None if anonymous.

        Duck-typed (core does not import accounts): DRF puts the authenticating token in `request.auth`, and
        an API token is recognised by its `lookup` id.
        """
        auth = getattr(request, "auth", None)
        lookup = getattr(auth, "lookup", None)
        if lookup:
            return cls(
                kind=CredentialKind.TOKEN,
                token_id=auth.pk,
                token_prefix=f"{getattr(auth, 'PREFIX', 'mgr')}_{lookup}",
                federation=getattr(auth, "federation", None) or None,
            )
        user = getattr(request, "user", None)
        if auth is None and getattr(user, "is_authenticated", False):
            return cls(kind=CredentialKind.SESSION)
        return None

    def context(self) -> dict:
        if self.kind == CredentialKind.TOKEN:
            data = {"kind": str(self.kind), "token_id": self.token_id, "token_prefix": self.token_prefix}
            if self.federation:
                data["oidc"] = self.federation
            return data
        return {"kind": str(self.kind)}


@dataclass(frozen=True)
class Source:
    """The channel of a change plus its request context, recorded with every audit event."""

    channel: Channel
    request_id: str = ""
    ip: str = ""
    user_agent: str = ""
    ci: dict = field(default_factory=dict)
    # None for the command line and tasks: they act without a caller's credential.
    credential: Credential | None = None

    @classmethod
    def from_request(cls, request, channel: Channel) -> Source:
        return cls(
            channel=channel,
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
            credential=Credential.of_request(request),
        )

    @classmethod
    def cli(cls) -> Source:
        return cls(channel=Channel.CLI, request_id=uuid.uuid4().hex)

    @classmethod
    def task(cls) -> Source:
        return cls(channel=Channel.TASK, request_id=uuid.uuid4().hex)

    @property
    def is_session(self) -> bool:
        return self.credential is not None and self.credential.kind == CredentialKind.SESSION

    @property
    def token_id(self) -> int | None:
        """The id of the API token the change came through, if any."""
        if self.credential is not None and self.credential.kind == CredentialKind.TOKEN:
            return self.credential.token_id
        return None

    def context(self) -> dict:
        """The part stored in the audit event's context (empty values left out)."""
        data = {"request_id": self.request_id, "ip": self.ip, "user_agent": self.user_agent}
        if self.ci:
            data["ci"] = self.ci
        if self.credential is not None:
            data["credential"] = self.credential.context()
        return {key: value for key, value in data.items() if value}
