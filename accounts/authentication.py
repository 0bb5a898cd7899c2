"""Bearer-token authentication for the API, and the scope check that goes with it."""

from __future__ import annotations

import datetime as dt
import hmac

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from accounts.models import ApiToken, Scope

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


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
        record = (
            ApiToken.objects.select_related("account")
            .defer("account__password", "account__first_name", "account__last_name", "account__email")
            .filter(lookup=parts[1])
            .first()
        )
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
