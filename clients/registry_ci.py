#!/usr/bin/env python3
"""registry_ci: register versions and promote them from a CI pipeline. Standard library only.

    export REGISTRY_URL=https://registry.example.com REGISTRY_TOKEN=mgr_...
    python registry_ci.py register --kind model --name fraud-detector --file version.json

    # No stored secret: exchange the job's OIDC ID token for a short-lived registry token (docs/ci.md).
    python registry_ci.py --oidc register --kind model --name fraud-detector --file version.json
    export REGISTRY_TOKEN=$(python registry_ci.py --oidc token)   # once per job, for later calls
    python registry_ci.py promote --kind model --name fraud-detector --version 7 --stage production \\
        --justification "AUC +0.8 pt on holdout" --wait 3600

Exit codes:
    0  registered; or the promotion was applied (or, without --wait, it was requested)
    1  the promotion ended rejected, cancelled, superseded, expired or failed
    2  usage error, or the server refused the request or failed
    3  --wait ran out before the promotion was decided
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

EXIT_OK, EXIT_NOT_APPLIED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
NOT_APPLIED = {"rejected", "cancelled", "superseded", "expired", "failed"}
PLURAL = {"model": "models", "prompt": "prompts", "dataset": "datasets"}


class ClientError(Exception):
    """The server refused the request or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): two URLs with the same origin share credentials."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects within the registry's origin only; refuse any other, so the token never leaves it.

    urllib would copy the Authorization header to whatever host a redirect names.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            raise ClientError(
                f"HTTP {code}: the registry redirected to another origin ({target}); not following it with "
                "the token. Set --url/REGISTRY_URL to the registry's own address.",
                status=code,
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Registry:
    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.opener = urllib.request.build_opener(SameOriginRedirects)

    def call(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "registry-ci/1")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return 304, dict(error.headers), {}
            raw = error.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode(errors="replace")[:500]}
            message = f"HTTP {error.code} {problem.get('type', '')}: {problem.get('detail', '')}"
            raise ClientError(message, status=error.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise ClientError(f"cannot reach {self.url}: {error}") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise ClientError(f"HTTP {code}: the ID token request was redirected; not following it", status=code)


def github_id_token(audience: str, timeout: float = 30.0) -> str:
    """The job's ID token from the GitHub Actions runner (the job needs `permissions: id-token: write`)."""
    url = os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"]
    url += ("&" if "?" in url else "?") + "audience=" + urllib.parse.quote(audience, safe="")
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "registry-ci/1"}
    )
    request.add_header("Authorization", f"bearer {os.environ['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}")
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=timeout) as response:
            value = json.loads(response.read()).get("value")
    except urllib.error.HTTPError as error:
        raise ClientError(
            f"HTTP {error.code} from the runner's ID token endpoint", status=error.code
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise ClientError(f"cannot reach the runner's ID token endpoint: {error}") from None
    if not isinstance(value, str) or not value:
        raise ClientError("the runner's ID token endpoint answered no token")
    return value


def job_id_token(audience: str, variable: str) -> str:
    """The CI job's OIDC ID token: requested from GitHub Actions, or read from the variable GitLab CI's
    `id_tokens:` (or another CI system) put it in."""
    if os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL") and os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        return github_id_token(audience)
    token = os.environ.get(variable, "").strip()
    if not token:
        raise ClientError(
            "--oidc: no ID token: in GitHub Actions give the job `permissions: id-token: write`; in GitLab "
            f"CI declare `id_tokens: {variable}: aud: {audience}`"
        )
    return token


def oidc_exchange(url: str, id_token: str) -> str:
    """A short-lived registry token for the job's ID token (POST /api/v1/auth/oidc/token)."""
    _, _, body = Registry(url, "").call("POST", "/api/v1/auth/oidc/token", {"token": id_token})
    _log(
        f"signed in with the job's ID token: {body['account']}, {', '.join(body['scopes'])}, "
        f"until {body['expires_at']} (trust policy {body['trust_policy']})"
    )
    return body["token"]


def ci_facts() -> dict:
    """The commit, ref and run URL of the current GitHub Actions or GitLab CI job, when there is one."""
    env = os.environ
    if env.get("GITHUB_ACTIONS"):
        parts = [env.get(name, "") for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
        return {
            "commit": env.get("GITHUB_SHA", ""),
            "ref": env.get("GITHUB_REF", ""),
            "run_url": "{}/{}/actions/runs/{}".format(*parts) if all(parts) else "",
            "system": "github-actions",
            "repository": env.get("GITHUB_REPOSITORY", ""),
            "actor": env.get("GITHUB_ACTOR", ""),
        }
    if env.get("GITLAB_CI"):
        return {
            "commit": env.get("CI_COMMIT_SHA", ""),
            "ref": env.get("CI_COMMIT_REF_NAME", ""),
            "run_url": env.get("CI_PIPELINE_URL", ""),
            "system": "gitlab-ci",
            "repository": env.get("CI_PROJECT_PATH", ""),
            "actor": env.get("GITLAB_USER_LOGIN", ""),
        }
    return {}


def register(registry: Registry, args) -> int:
    with open(args.file, encoding="utf-8") as handle:
        body = json.load(handle)
    facts = ci_facts()
    if facts and "source" not in body:
        body["source"] = {key: facts[key] for key in ("commit", "ref", "run_url") if facts.get(key)}
    _, _, version = registry.call("POST", f"/api/v1/{PLURAL[args.kind]}/{args.name}/versions", body)
    print(json.dumps({"version": version["version"], "digest": version["digest"], "url": version["url"]}))
    return EXIT_OK


def promote(registry: Registry, args) -> int:
    body = {
        "kind": args.kind,
        "name": args.name,
        "version": args.version,
        "stage": args.stage,
        "justification": args.justification,
        "rollback": args.rollback,
        "ci": {key: value for key, value in ci_facts().items() if value},
    }
    if args.callback_url:
        body["callback_url"] = args.callback_url
    key = args.idempotency_key or _default_key(body)
    _, headers, promotion = registry.call("POST", "/api/v1/promotions", body, {"Idempotency-Key": key})
    replayed = " (replayed)" if headers.get("Idempotent-Replayed") == "true" else ""
    _log(f"promotion #{promotion['id']} {promotion['status']}{replayed}")
    # Where people review it, for the CI log (a link to follow); the API address is the one polled.
    _log(f"review page: {registry.url}/promotions/{promotion['id']}/")
    _log(f"API: {registry.url}{promotion['url']}")
    if args.wait is None:
        print(json.dumps(promotion))
        return _exit_for(promotion["status"], waiting=False)
    return _wait(registry, promotion, deadline=time.monotonic() + args.wait, max_interval=args.max_interval)


def _default_key(body: dict) -> str:
    """One key per pipeline run and target: a retried job replays instead of asking twice."""
    # The run, not the attempt: a re-run job replays its request instead of superseding it.
    run = os.environ.get("GITHUB_RUN_ID", "") or os.environ.get("CI_PIPELINE_ID", "")
    if not run:
        return str(uuid.uuid4())
    target = json.dumps({**body, "run": run}, sort_keys=True)
    return "registry-ci-" + hashlib.sha256(target.encode()).hexdigest()[:40]


def _wait(registry: Registry, promotion: dict, *, deadline: float, max_interval: float) -> int:
    etag, delay = None, 2.0
    while promotion["status"] in ("pending", "approved"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _log(f"timed out waiting for promotion #{promotion['id']} ({promotion['status']})")
            print(json.dumps(promotion))
            return EXIT_TIMEOUT
        time.sleep(min(delay, remaining, max_interval) * random.uniform(0.9, 1.0))
        headers = {"If-None-Match": etag} if etag else {}
        try:
            status, response_headers, body = registry.call("GET", promotion["url"], headers=headers)
        except ClientError as error:
            if error.status is not None and 400 <= error.status < 500 and error.status != 429:
                raise  # the token or the request is refused: waiting longer will not help
            _log(f"poll failed, retrying: {error}")  # unreachable, 429 or 5xx: back off and try again
            delay = min(delay * 2, max_interval)
            continue
        etag = response_headers.get("ETag", etag)
        retry_after = response_headers.get("Retry-After")
        delay = float(retry_after) if retry_after and retry_after.isdigit() else min(delay * 2, max_interval)
        if status == 200:
            if body["status"] != promotion["status"]:
                _log(f"promotion #{body['id']} is {body['status']}")
            promotion = body
    print(json.dumps(promotion))
    return _exit_for(promotion["status"], waiting=True)


def _exit_for(status: str, *, waiting: bool) -> int:
    if status == "applied":
        return EXIT_OK
    if status in NOT_APPLIED:
        return EXIT_NOT_APPLIED
    return EXIT_TIMEOUT if waiting else EXIT_OK


def _log(message: str) -> None:
    print(f"registry-ci: {message}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="registry_ci", description=__doc__.split("\n\n")[0])
    main.add_argument(
        "--url", default=os.environ.get("REGISTRY_URL"), help="registry base URL ($REGISTRY_URL)"
    )
    main.add_argument("--token", default=os.environ.get("REGISTRY_TOKEN"), help="API token ($REGISTRY_TOKEN)")
    main.add_argument(
        "--oidc",
        action="store_true",
        help="no stored token: exchange the CI job's OIDC ID token for a short-lived one (a trust policy)",
    )
    main.add_argument(
        "--oidc-audience",
        default=os.environ.get("REGISTRY_OIDC_AUDIENCE"),
        help="the audience the trust policy names ($REGISTRY_OIDC_AUDIENCE; default: the registry URL)",
    )
    main.add_argument(
        "--oidc-token-variable",
        default="REGISTRY_ID_TOKEN",
        help="GitLab CI and others: the variable holding the ID token (`id_tokens:`; default "
        "REGISTRY_ID_TOKEN)",
    )
    commands = main.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "token", help="with --oidc: print a short-lived registry token for the job's ID token"
    )
    reg = commands.add_parser("register", help="register a version described by a JSON file")
    reg.add_argument("--kind", choices=PLURAL, default="model")
    reg.add_argument("--name", required=True)
    reg.add_argument("--file", required=True, help="JSON body: digest, metrics, lineage, …")
    pro = commands.add_parser("promote", help="request a promotion and optionally wait for the decision")
    pro.add_argument("--kind", choices=PLURAL, default="model")
    pro.add_argument("--name", required=True)
    pro.add_argument("--version", type=int, required=True)
    pro.add_argument("--stage", required=True)
    pro.add_argument("--justification", required=True)
    pro.add_argument("--rollback", action="store_true")
    pro.add_argument("--wait", type=float, help="seconds to wait for the decision")
    pro.add_argument("--max-interval", type=float, default=60.0, help="longest pause between polls")
    pro.add_argument("--idempotency-key", help="default: derived from the CI run, else random")
    pro.add_argument("--callback-url", help="the registry POSTs the decision there, signed (see docs/ci.md)")
    return main


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return EXIT_OK if exit_.code == 0 else EXIT_ERROR
    if not args.url or not (args.token or args.oidc):
        _log("set --url/--token or REGISTRY_URL/REGISTRY_TOKEN, or --oidc")
        return EXIT_ERROR
    try:
        token = args.token
        if args.oidc:
            audience = args.oidc_audience or args.url.rstrip("/")
            token = oidc_exchange(args.url, job_id_token(audience, args.oidc_token_variable))
        if args.command == "token":
            if not args.oidc:
                _log("token: needs --oidc (it prints the token the job's ID token is exchanged for)")
                return EXIT_ERROR
            print(token)
            return EXIT_OK
        registry = Registry(args.url, token)
        return register(registry, args) if args.command == "register" else promote(registry, args)
    except (ClientError, OSError, ValueError, KeyError) as error:
        _log(str(error))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
