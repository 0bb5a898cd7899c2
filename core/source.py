"""Where a change came from: the channel and what the request tells about its origin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db import models


class Channel(models.TextChoices):
    WEB = "web", "Web"
    API = "api", "API"
    TASK = "task", "Task"
    CLI = "cli", "Command line"


@dataclass(frozen=True)
class Source:
    """The channel of a change plus its request context, recorded with every audit event."""

    channel: Channel
    request_id: str = ""
    ip: str = ""
    user_agent: str = ""
    ci: dict = field(default_factory=dict)

    @classmethod
    def from_request(cls, request, channel: Channel) -> Source:
        return cls(
            channel=channel,
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )

    @classmethod
    def cli(cls) -> Source:
        return cls(channel=Channel.CLI, request_id=uuid.uuid4().hex)

    @classmethod
    def task(cls) -> Source:
        return cls(channel=Channel.TASK, request_id=uuid.uuid4().hex)

    def context(self) -> dict:
        """The part stored in the audit event's context (empty values left out)."""
        data = {"request_id": self.request_id, "ip": self.ip, "user_agent": self.user_agent}
        if self.ci:
            data["ci"] = self.ci
        return {key: value for key, value in data.items() if value}
