"""OpenID Connect ID tokens from CI systems: the rules of a trust policy, and the check of a token's signature
and claims against its issuer's published keys.

joserfc does the JOSE work (docs/architecture.md says why): it verifies with the algorithm list we give it and
typed keys, so a token cannot choose `none` or HMAC with a public key as its secret. This module adds what it
leaves to its caller: which issuers are trusted, fetching their keys (OIDC discovery, then `jwks_uri`) over
HTTPS, caching them for a bounded time, and refetching once, rate-limited, when a token names a key id the
cache lacks.

Nothing here writes to the database; accounts/federation.py holds the services.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import import_key
from joserfc.jws import extract_compact

from accounts.models import Scope, TrustProvider
from core.exceptions import DomainError, InvalidInput

# Asymmetric signatures only: an HMAC algorithm would let anyone holding the public key forge tokens.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_DOCUMENT_BYTES = 512 * 1024
DEFAULT_ISSUERS = {
    TrustProvider.GITHUB: "https://token.actions.githubusercontent.com",
    TrustProvider.GITLAB: "https://gitlab.com",
}
# The claims a condition may name, per provider (any claim for another issuer), and those one must name so
# that a policy never trusts every repository of a public CI service.
CLAIMS = {
    TrustProvider.GITHUB: (
        "repository",
        "repository_id",
        "repository_owner_id",
        "ref",
        "environment",
        "job_workflow_ref",
    ),
    TrustProvider.GITLAB: ("project_path", "ref", "ref_protected", "environment"),
}
REQUIRED_ONE_OF = {
    TrustProvider.GITHUB: ("repository", "repository_id"),
    TrustProvider.GITLAB: ("project_path",),
    TrustProvider.OTHER: ("sub",),
}
BOOLEAN_CLAIMS = ("ref_protected",)
# Claims recorded with the exchange and carried by the minted token, besides those the policy matched.
CONTEXT_CLAIMS = (
    "repository",
    "project_path",
    "ref",
    "sha",
    "environment",
    "workflow_ref",
    "job_workflow_ref",
    "run_id",
    "run_attempt",
    "pipeline_id",
    "job_id",
    "actor",
    "user_login",
)
POLICY_SCOPES = (Scope.READ, Scope.WRITE, Scope.PROMOTE)
CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class IdTokenRefused(DomainError):
    """The ID token is not accepted: the detail names the check that failed, never a policy's content."""

    status = 401
    type = "id-token-invalid"
    title = "The ID token is not accepted"


# Trust policy rules (pure) ---------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_refusal(url: str) -> str | None:
    """Why an issuer (or its keys' URL) may not be fetched, or None: HTTPS, or plain HTTP on a loopback host
    where OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS is on (the tests' issuer)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "must be an https:// URL"
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        return "must be an https:// URL with a host, and no user, query or fragment"
    if parts.scheme == "https":
        return None
    if (
        parts.scheme == "http"
        and settings.OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS
        and _is_loopback(parts.hostname)
    ):
        return None
    return "must be an https:// URL"


def clean_policy(fields: dict) -> dict:
    """A trust policy's fields checked and normalised (the first bad field is named), all of them present."""
    provider = fields.get("provider")
    if provider not in TrustProvider.values:
        raise InvalidInput.field("provider", f"must be one of {', '.join(TrustProvider.values)}")
    if not fields.get("issuer"):
        if provider not in DEFAULT_ISSUERS:
            raise InvalidInput.field("issuer", "is required for another OIDC issuer")
        fields["issuer"] = DEFAULT_ISSUERS[provider]
    issuer = fields["issuer"]
    refusal = url_refusal(issuer) if len(issuer) <= 300 else "must be at most 300 characters"
    if refusal:
        raise InvalidInput.field("issuer", refusal)
    audience = fields.get("audience") or ""
    if not audience.strip() or len(audience) > 200:
        raise InvalidInput.field("audience", "is required, at most 200 characters")
    conditions = fields.get("conditions")
    if not isinstance(conditions, dict) or not conditions:
        raise InvalidInput.field("conditions", "must name at least one claim and its value")
    allowed = CLAIMS.get(provider)
    for claim, value in conditions.items():
        if not isinstance(claim, str) or not CLAIM_NAME.fullmatch(claim):
            raise InvalidInput.field("conditions", f"{claim!r} is not a claim name")
        if allowed is not None and claim not in allowed:
            raise InvalidInput.field(
                f"conditions.{claim}", f"is not a condition for {provider}; one of {', '.join(allowed)}"
            )
        if not isinstance(value, str) or not value.strip() or len(value) > 300:
            raise InvalidInput.field(f"conditions.{claim}", "must be a non-empty string of at most 300")
        if claim in BOOLEAN_CLAIMS and value not in ("true", "false"):
            raise InvalidInput.field(f"conditions.{claim}", 'must be "true" or "false"')
    required = REQUIRED_ONE_OF[provider]
    if provider != TrustProvider.OTHER and not set(required) & set(conditions):
        raise InvalidInput.field(
            "conditions",
            f"must name {' or '.join(required)}: otherwise every job of the CI service would match",
        )
    scopes = fields.get("scopes")
    if not isinstance(scopes, list) or not scopes or set(scopes) - set(POLICY_SCOPES):
        raise InvalidInput.field("scopes", f"must be a non-empty list of {', '.join(POLICY_SCOPES)}")
    fields["scopes"] = sorted(set(scopes))
    lifetime = fields.get("token_lifetime_seconds")
    maximum = settings.OIDC_TOKEN_MAX_SECONDS
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 60 <= lifetime <= maximum:
        raise InvalidInput.field("token_lifetime_seconds", f"must be between 60 and {maximum}")
    return fields


def claim_text(value) -> str | None:
    """A claim's value as a condition compares it: strings as they are, booleans as "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def audiences_of(claims: dict) -> list[str]:
    audience = claims.get("aud")
    return [audience] if isinstance(audience, str) else [a for a in audience or [] if isinstance(a, str)]


def policy_matches(*, audience: str, conditions: dict, claims: dict) -> bool:
    """Whether a verified token satisfies a policy: its audience, and every condition exactly."""
    if audience not in audiences_of(claims):
        return False
    return all(claim_text(claims.get(name)) == value for name, value in conditions.items())


def recorded_claims(*, conditions: dict, claims: dict) -> dict:
    """The claims an exchange records: those the policy matched and the job's context (commit, run, ...)."""
    names = sorted(set(conditions) | {name for name in CONTEXT_CLAIMS if name in claims})
    return {name: (claim_text(claims.get(name)) or "")[:300] for name in names}


# Keys ------------------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # an issuer's documents are fetched where they are published, not where they point


_OPENER = urllib.request.build_opener(_NoRedirects)


def _fetch_json(url: str) -> dict:
    refusal = url_refusal(url)
    if refusal:
        raise IdTokenRefused(f"The issuer's documents must be served over HTTPS ({url}).")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "registry"})
    try:
        with _OPENER.open(request, timeout=settings.OIDC_FETCH_TIMEOUT) as response:
            raw = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ValueError("too large")
        document = json.loads(raw)
    except (OSError, ValueError) as error:
        raise IdTokenRefused(f"The issuer's keys cannot be fetched now ({type(error).__name__}).") from None
    if not isinstance(document, dict):
        raise IdTokenRefused("The issuer published a document that is not a JSON object.")
    return document


def fetch_keys(issuer: str) -> dict[str, dict]:
    """The issuer's signing keys by key id: discovery, then its jwks_uri."""
    discovery = _fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if discovery.get("issuer") != issuer:
        raise IdTokenRefused("The issuer's discovery document names another issuer.")
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise IdTokenRefused("The issuer's discovery document has no jwks_uri.")
    keys = _fetch_json(jwks_uri).get("keys")
    if not isinstance(keys, list):
        raise IdTokenRefused("The issuer's key set has no keys.")
    return {key["kid"]: key for key in keys if isinstance(key, dict) and isinstance(key.get("kid"), str)}


@dataclass
class _Entry:
    keys: dict[str, dict]
    fetched_at: float


class KeyCache:
    """Each issuer's keys, per process: kept OIDC_JWKS_CACHE_SECONDS; an unknown key id refetches them, at
    most once per OIDC_JWKS_REFETCH_SECONDS, so tokens naming made-up key ids cannot hammer the issuer."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def key(self, issuer: str, kid: str) -> dict:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(issuer)
        if entry is None or now - entry.fetched_at >= settings.OIDC_JWKS_CACHE_SECONDS:
            entry = self._refresh(issuer)
        elif kid not in entry.keys and now - entry.fetched_at >= settings.OIDC_JWKS_REFETCH_SECONDS:
            entry = self._refresh(issuer)  # the issuer may have rotated its keys since
        if kid not in entry.keys:
            raise IdTokenRefused("The ID token is signed with a key the issuer does not publish.")
        return entry.keys[kid]

    def _refresh(self, issuer: str) -> _Entry:
        entry = _Entry(keys=fetch_keys(issuer), fetched_at=time.monotonic())
        with self._lock:
            self._entries[issuer] = entry
        return entry


KEYS = KeyCache()


# Tokens ----------------------------------------------------------------------------------------------------


def _unverified(token: str) -> tuple[dict, dict]:
    """The header and claims of a compact JWS, read before anything is verified."""
    try:
        compact = extract_compact(token.encode())
        header, claims = compact.headers(), json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise IdTokenRefused("The ID token is not a signed JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise IdTokenRefused("The ID token is not a signed JWT.")
    return header, claims


def unverified_issuer(token: str) -> str:
    """The `iss` the token claims, read before anything is verified, to choose whose keys verify it."""
    issuer = _unverified(token)[1].get("iss")
    if not isinstance(issuer, str):
        raise IdTokenRefused("The ID token names no issuer.")
    return issuer


_CLAIM_REFUSALS = {
    "iss": "The ID token's issuer is not trusted.",
    "aud": "The ID token's audience is not accepted.",
    "nbf": "The ID token is not valid yet (nbf or iat in the future).",
    "iat": "The ID token is not valid yet (nbf or iat in the future).",
}


def verify(token: str, *, issuer: str, audiences: list[str]) -> dict:
    """The token's claims once its signature (by a published key of issuer), issuer, audience (one of
    audiences), expiry, not-before and issue time are checked; IdTokenRefused naming the failed check."""
    header, _ = _unverified(token)
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in ALGORITHMS:
        raise IdTokenRefused(f"The ID token's algorithm is not accepted; use one of {', '.join(ALGORITHMS)}.")
    if not isinstance(kid, str):
        raise IdTokenRefused("The ID token names no key id (kid).")
    jwk = KEYS.key(issuer, kid)
    if jwk.get("alg") not in (None, algorithm):
        raise IdTokenRefused("The ID token's algorithm is not the one of its key.")
    try:
        key = import_key(jwk)
    except (JoseError, ValueError, TypeError):
        raise IdTokenRefused("The issuer's key cannot be read.") from None
    try:
        # The one algorithm allowed is the header's, already on the asymmetric list; the key's type must fit
        # it (an RSA key never verifies an HMAC), which joserfc checks.
        claims = jose_jwt.decode(token, key, algorithms=[algorithm]).claims
    except BadSignatureError:
        raise IdTokenRefused("The ID token's signature does not verify.") from None
    except (JoseError, ValueError, TypeError):
        raise IdTokenRefused("The ID token is not valid.") from None
    essential = {"essential": True}
    registry = jose_jwt.JWTClaimsRegistry(
        leeway=settings.OIDC_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "values": audiences},
        sub=essential,
        exp=essential,
        iat=essential,
        jti=essential,
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise IdTokenRefused("The ID token has expired.") from None
    except MissingClaimError as error:
        raise IdTokenRefused(f"The ID token lacks the claim(s): {error.claim}.") from None
    except ClaimError as error:
        refusal = _CLAIM_REFUSALS.get(error.claim, f"The ID token's {error.claim!r} claim is not valid.")
        raise IdTokenRefused(refusal) from None
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise IdTokenRefused("The ID token has no jti: its replay could not be told apart.")
    return claims
