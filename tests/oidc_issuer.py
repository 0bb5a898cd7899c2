"""A local OpenID Connect issuer for the tests: keys generated here, discovery and JWKS served over plain HTTP
on an ephemeral 127.0.0.1 port (allowed by OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS in the test settings only).

It also serves what a GitHub Actions runner serves a job (`/github/id-token`, the
ACTIONS_ID_TOKEN_REQUEST_URL), so the CI client can be run against it as in a workflow; and, for single
sign-on, an authorization endpoint that signs in `issuer.person` at once and a token endpoint that checks the
client's secret and the PKCE code verifier before it answers an ID token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.parse
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

GITHUB_REQUEST_TOKEN = "runner-request-token"
SSO_CLIENT_ID = "registry"
SSO_CLIENT_SECRET = "registry-client-secret"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_jwk(key, kid: str) -> dict:
    jwk = RSAKey.import_key(_pem(key)).as_dict(private=False)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """Signs ID tokens with its keys and publishes the public halves; counts the fetches of its keys."""

    def __init__(self) -> None:
        self.key = new_key()
        self.kid = "key-1"
        self.published = {self.kid: self.key}  # the keys the JWKS lists, by kid
        self.jwks_fetches = 0
        self.github_requests: list[dict] = []
        # Single sign-on: who signs in at /authorize, the codes handed out, the token requests received.
        self.person: dict = {}
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        self.sso_key = None  # another key to sign ID tokens with (a forgery), else the issuer's own
        self._server: http.server.ThreadingHTTPServer | None = None

    # Serving ---------------------------------------------------------------------------------------------

    def start(self) -> Issuer:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path == "/.well-known/openid-configuration":
                    return self._json(200, issuer.discovery())
                if path == "/jwks":
                    issuer.jwks_fetches += 1
                    return self._json(200, issuer.jwks())
                if path == "/github/id-token":
                    return self._github(urllib.parse.parse_qs(query))
                if path == "/authorize":
                    return self._authorize(dict(urllib.parse.parse_qsl(query)))
                return self._json(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path == "/token":
                    return self._json(*issuer.answer_token(form, self.headers.get("Authorization", "")))
                return self._json(404, {})

            def _authorize(self, params):
                code = issuer.authorize(params)
                target = (
                    params["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": params.get("state", "")})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _github(self, query):
                authorization = self.headers.get("Authorization", "")
                issuer.github_requests.append({"authorization": authorization, "query": query})
                if authorization != f"bearer {GITHUB_REQUEST_TOKEN}":
                    return self._json(401, {"message": "bad request token"})
                audience = query.get("audience", ["https://github.com/acme"])[0]
                return self._json(200, {"value": issuer.token(**issuer.github_claims, aud=audience)})

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.github_claims = github_claims()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def discovery(self) -> dict:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # Single sign-on ----------------------------------------------------------------------------------------

    def authorize(self, params: dict) -> str:
        assert params["client_id"] == SSO_CLIENT_ID and params["response_type"] == "code", params
        code = uuid.uuid4().hex
        self.codes[code] = {**params, "person": dict(self.person)}
        return code

    def answer_token(self, form: dict, authorization: str) -> tuple[int, dict]:
        self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{SSO_CLIENT_ID}:{SSO_CLIENT_SECRET}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if grant.get("code_challenge_method") != "S256" or b64(
            hashlib.sha256(verifier.encode()).digest()
        ) != grant.get("code_challenge"):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        claims = {"aud": SSO_CLIENT_ID, "nonce": grant.get("nonce"), **grant["person"]}
        id_token = self.token(key=self.sso_key, **claims)
        return 200, {
            "access_token": uuid.uuid4().hex,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def jwks(self) -> dict:
        return {"keys": [public_jwk(key, kid) for kid, key in self.published.items()]}

    # Tokens ----------------------------------------------------------------------------------------------

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        base = {
            "iss": self.url,
            "sub": "repo:acme/fraud:ref:refs/heads/main",
            "aud": "https://registry.example.test",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        base.update(overrides)
        return {name: value for name, value in base.items() if value is not None}

    def token(self, *, key=None, kid: str | None = None, algorithm: str = "RS256", **overrides) -> str:
        header = {"alg": algorithm, "typ": "JWT", "kid": kid or self.kid}
        return jwt.encode(header, self.claims(**overrides), RSAKey.import_key(_pem(key or self.key)))

    def unsigned(self, **overrides) -> str:
        """alg none: a header, the claims, and no signature."""
        header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.kid}).encode())
        return f"{header}.{b64(json.dumps(self.claims(**overrides)).encode())}."

    def hmac_with_public_key(self, **overrides) -> str:
        """HS256 keyed with the issuer's public key (which anyone can fetch): the classic confusion attack."""
        secret = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = b64(json.dumps(self.claims(**overrides)).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(signature)}"


def github_claims(**overrides) -> dict:
    """The claims GitHub Actions puts in a job's ID token (a push to main of acme/fraud, environment prod)."""
    claims = {
        "sub": "repo:acme/fraud:environment:prod",
        "repository": "acme/fraud",
        "repository_id": "101",
        "repository_owner": "acme",
        "repository_owner_id": "7",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": "a" * 40,
        "environment": "prod",
        "workflow_ref": "acme/fraud/.github/workflows/train.yml@refs/heads/main",
        "job_workflow_ref": "acme/fraud/.github/workflows/train.yml@refs/heads/main",
        "run_id": "4242",
        "run_attempt": "1",
        "actor": "octocat",
    }
    claims.update(overrides)
    return claims


def gitlab_claims(**overrides) -> dict:
    """The claims GitLab CI puts in an `id_tokens:` token (a protected main branch of acme/fraud)."""
    claims = {
        "sub": "project_path:acme/fraud:ref_type:branch:ref:main",
        "project_id": "55",
        "project_path": "acme/fraud",
        "namespace_path": "acme",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "environment": "prod",
        "pipeline_id": "900",
        "job_id": "901",
        "user_login": "octocat",
    }
    claims.update(overrides)
    return claims


def person_claims(**overrides) -> dict:
    """The claims an identity provider puts in a person's ID token (groups as Okta or Keycloak send them)."""
    claims = {
        "sub": "00u1rita",
        "preferred_username": "rita",
        "email": "rita@example.com",
        "given_name": "Rita",
        "family_name": "Reviewer",
        "groups": ["registry-reviewers", "everyone"],
    }
    claims.update(overrides)
    return claims
