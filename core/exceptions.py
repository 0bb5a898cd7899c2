"""Domain errors raised by services; the API and the pages turn them into responses.

Each error has a stable problem `type` (a slug that clients may compare) and the HTTP status the API answers
with. Field errors name the field and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """A rule of the registry refused the change; nothing was written."""

    status = 400
    type = "bad-request"
    title = "The request was refused"

    def __init__(
        self,
        detail: str,
        *,
        type: str | None = None,
        errors: list[FieldError] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if type is not None:
            self.type = type
        self.errors = errors or []
        self.extra = extra or {}


class InvalidInput(DomainError):
    status = 400
    type = "invalid-input"
    title = "The input is not valid"

    @classmethod
    def field(cls, field: str, message: str, *, type: str | None = None) -> InvalidInput:
        return cls(f"{field}: {message}", type=type, errors=[FieldError(field, message)])


class NotFound(DomainError):
    status = 404
    type = "not-found"
    title = "Not found"


class Forbidden(DomainError):
    status = 403
    type = "forbidden"
    title = "Not allowed"


class Conflict(DomainError):
    status = 409
    type = "conflict"
    title = "The request conflicts with the current state"


class Unprocessable(DomainError):
    status = 422
    type = "unprocessable"
    title = "The request cannot be processed"


class TooManyRequests(DomainError):
    """Too many refusals from one client: refused unexamined for retry_after more seconds (Retry-After)."""

    status = 429
    type = "throttled"
    title = "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int, type: str | None = None) -> None:
        super().__init__(detail, type=type)
        self.retry_after = retry_after
