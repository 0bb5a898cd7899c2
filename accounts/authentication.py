"""Bearer-token authentication for the API, and the scope check that goes with it."""

from __future__ import annotations

import datetime as dt
import hmac

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from accounts.models import ApiToken, Scope, User
from core.compiled import CompiledQuery

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
TOKEN_COLUMNS = [field.attname for field in ApiToken._meta.concrete_fields]
# The account's columns that authorization reads (password hash and personal details stay in the database).
ACCOUNT_FIELDS = {
    "id",
    "username",
    "is_active",
    "is_superuser",
    "is_staff",
    "global_role",
    "is_service_account",
}
# In the model's field order, as Model.from_db expects.
ACCOUNT_COLUMNS = [field.attname for field in User._meta.concrete_fields if field.attname in ACCOUNT_FIELDS]


def _token_query(*, lookup: str):
    columns = TOKEN_COLUMNS + [f"account__{name}" for name in ACCOUNT_COLUMNS]
    return ApiToken.objects.filter(lookup=lookup).values_list(*columns)


_TOKEN = CompiledQuery(_token_query)


def token_by_lookup(lookup: str) -> ApiToken | None:
    """The token with this lookup id and its account, in one indexed query compiled once."""
    row = _TOKEN.first("token", {}, lookup=lookup)
    if row is None:
        return None
    token = ApiToken.from_db("default", TOKEN_COLUMNS, row[: len(TOKEN_COLUMNS)])
    token.account = User.from_db("default", ACCOUNT_COLUMNS, row[len(TOKEN_COLUMNS) :])
    return token


class TokenRefused(exceptions.AuthenticationFailed):
    """401 with a problem type saying why: token-invalid, token-expired or token-revoked."""

    def __init__(self, problem_type: str, detail: str):
        super().__init__(detail)
        self.problem_type = problem_type


class TokenAuthentication(authentication.BaseAuthentication):
    """Authorization: Bearer mgr_<lookup>_<secret>. One indexed query (token joined with its account)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        token = header[len(self.keyword) + 1 :].strip()
        parts = token.split("_")
        if len(parts) != 3 or parts[0] != ApiToken.PREFIX or len(parts[1]) != 12 or not parts[2]:
            raise TokenRefused("token-invalid", "The token is malformed.")
        record = token_by_lookup(parts[1])
        if record is None or not hmac.compare_digest(record.hashed, ApiToken.hash(token)):
            raise TokenRefused("token-invalid", "The token is not valid.")
        if record.is_revoked:
            raise TokenRefused("token-revoked", "The token has been revoked.")
        if record.is_expired:
            raise TokenRefused("token-expired", f"The token expired at {record.expires_at.isoformat()}.")
        if not record.account.is_active:
            raise TokenRefused("token-invalid", "The token's account is disabled.")
        now = timezone.now()
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            # Usage telemetry, not a governed change: kept coarse so that reads stay read-only.
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.account, record

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class ScopeDenied(exceptions.PermissionDenied):
    problem_type = "insufficient-scope"


class TokenScopes(permissions.BasePermission):
    """A token may do only what its scopes allow (and never more than its account may).

    Reads need `read`; writes need the view's `token_scope` (default `write`).
    """

    message = "The token's scopes do not allow this request."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        if request.method in permissions.SAFE_METHODS:
            needed = Scope.READ
        else:
            needed = getattr(view, "token_scope", Scope.WRITE)
        if needed in token.scopes:
            return True
        raise ScopeDenied(f"The token lacks the '{needed}' scope.")
