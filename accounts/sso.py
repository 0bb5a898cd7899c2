"""Single sign-on for people: the OpenID Connect client (authorization code with PKCE), through Authlib.

Authlib does the protocol: discovery, the authorization redirect with `state`, `nonce` and an S256 code
challenge kept in the session, the code exchange at the token endpoint, and the ID token's signature (the
provider's JWKS, refetched on an unknown key id), issuer, audience, nonce and times. What the registry does
with the verified claims is accounts.federation.sso_sign_in. Configured by the SSO_* settings
(docs/operations.md).
"""

from __future__ import annotations

import threading

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from joserfc.errors import JoseError

from accounts.oidc import url_refusal

# What a failed provider exchange raises: a refusal or error from the provider, the network, or the ID token.
FAILURES = (
    OAuthError,
    requests.RequestException,
    JoseError,
    ValueError,
    KeyError,
    TypeError,
)

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return bool(settings.SSO_OIDC_ISSUER and settings.SSO_OIDC_CLIENT_ID)


def client():
    """The provider's client, made once per configuration and process (it keeps the discovered metadata)."""
    issuer = settings.SSO_OIDC_ISSUER
    key = (issuer, settings.SSO_OIDC_CLIENT_ID, settings.SSO_OIDC_CLIENT_SECRET, settings.SSO_OIDC_SCOPES)
    with _lock:
        if key not in _clients:
            refusal = url_refusal(issuer)
            if refusal:
                raise ImproperlyConfigured(f"SSO_OIDC_ISSUER {refusal}")
            if "openid" not in settings.SSO_OIDC_SCOPES.split():
                raise ImproperlyConfigured("SSO_OIDC_SCOPES must include openid")
            _clients[key] = OAuth().register(
                name="sso",
                client_id=settings.SSO_OIDC_CLIENT_ID,
                client_secret=settings.SSO_OIDC_CLIENT_SECRET or None,
                server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": settings.SSO_OIDC_SCOPES,
                    "code_challenge_method": "S256",
                    "default_timeout": settings.OIDC_FETCH_TIMEOUT,
                },
            )
        return _clients[key]


def forget_clients() -> None:
    """Drop the clients (tests change the provider between runs)."""
    with _lock:
        _clients.clear()
