"""The error answers of every API operation in the OpenAPI schema, added in one place.

core/api.py answers every refusal with an RFC 9457 problem (application/problem+json). drf-spectacular only
knows the success answers the views declare, so `problem_responses` (a postprocessing hook, see
SPECTACULAR_SETTINGS) adds to every operation the error statuses it can answer, each with the `Problem`
schema and one example per problem type documented in docs/api.md that the operation can answer.

Which operation answers what is decided here from the path and the method, not in each view:
- every operation: 400 (a query parameter, a header), 401 (credentials), 403 (scope, roles, CSRF), 406;
- a path with parameters: 404 (missing or not visible: the same answer);
- a body: 400 for JSON and limits, 409 for the state-dependent refusals of the route, 413, 415;
- the routes whose services answer 422 (promotion requests, rejections);
- the OIDC token exchange: 429 while its caller's address is locked after too many refused ID tokens;
- every operation: 503 while the database cannot be reached (core/outage.py).
No API route answers 412 (the sign-in page answers 429 too; it is not in the schema).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PROBLEM_MEDIA_TYPE = "application/problem+json"
WRITE_METHODS = ("post", "put", "patch", "delete")
BODY_METHODS = ("post", "put", "patch")

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem: compare on `type`; `title` and `detail` are for people.",
    "properties": {
        "type": {"type": "string", "description": "A stable slug naming the problem, e.g. `invalid-input`."},
        "title": {"type": "string", "description": "A short summary of the kind of problem."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong this time, for people."},
        "errors": {
            "type": "array",
            "description": "Input problems only: each field (dotted and indexed: `lineage[0].relation`) and "
            "what is wrong with it.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
        "current_version": {
            "type": "integer",
            "description": "`already-in-stage`, `rollback-required`: the number of the version in the stage.",
        },
        "current_state": {
            "type": "string",
            "description": "`request-not-pending`: the promotion's state.",
        },
        "failed_gates": {
            "type": "array",
            "description": "`gate-failed`: every gate that fails, with the value found.",
            "items": {
                "type": "object",
                "properties": {
                    "gate": {"type": "object", "additionalProperties": True},
                    "passed": {"type": "boolean"},
                    "actual": {"nullable": True},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}

STATUS_DESCRIPTIONS = {
    400: "The request is not valid: nothing was changed.",
    401: "No valid credentials (missing, malformed, unknown, expired or revoked token).",
    403: "Authenticated, but not allowed (the token's scope, your roles, the CSRF check).",
    404: "Not found, or not visible to you: the two answer the same.",
    406: "The Accept header excludes JSON.",
    409: "The request conflicts with the current state: nothing was changed.",
    413: "The body is too large.",
    415: "The body is not application/json.",
    422: "The request is well formed but a rule refuses it: nothing was changed.",
    429: "Too many refusals from your address: send the request again after Retry-After.",
    503: "The database (or the cache) cannot be reached for now: send the request again after Retry-After.",
}


@dataclass(frozen=True)
class ProblemType:
    """One documented problem type, and where it can occur (a path pattern and methods)."""

    status: int
    type: str
    title: str
    detail: str
    extra: dict = field(default_factory=dict)
    path: str = r".*"  # a regex matched against the whole path
    methods: tuple[str, ...] = ("get", "post", "put", "patch", "delete")

    def applies(self, path: str, method: str) -> bool:
        return method in self.methods and re.fullmatch(self.path, path) is not None

    def example(self) -> dict:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


INVALID = "The input is not valid"
REFUSED = "The request was refused"
CONFLICT = "The request conflicts with the current state"
UNPROCESSABLE = "The request cannot be processed"
ASSET = r"/api/v1/(models|prompts|datasets)/\{name\}"
VERSION = ASSET + r"/versions/\{number\}"
OIDC_EXCHANGE = r"/api/v1/auth/oidc/token"


def _field(field_name: str, message: str) -> dict:
    return {"errors": [{"field": field_name, "message": message}]}


PROBLEM_TYPES: list[ProblemType] = [
    # 400 ------------------------------------------------------------------------------------------------
    ProblemType(
        400,
        "invalid-input",
        INVALID,
        "page_size: Ensure this value is less than or equal to 200.",
        _field("page_size", "Ensure this value is less than or equal to 200."),
        methods=("get",),
    ),
    ProblemType(
        400,
        "invalid-input",
        INVALID,
        "metrics.auc: must be a finite number",
        _field("metrics.auc", "must be a finite number"),
        methods=BODY_METHODS,
    ),
    ProblemType(400, "invalid-header", "Bad Request", "A request header contains a NUL character."),
    ProblemType(400, "invalid-json", INVALID, "The body is not valid JSON.", methods=BODY_METHODS),
    ProblemType(
        400, "too-deep", INVALID, "The body nests more than 64 arrays and objects.", methods=BODY_METHODS
    ),
    ProblemType(400, "invalid-cursor", INVALID, "The pagination cursor is not valid.", methods=("get",)),
    ProblemType(
        400,
        "unknown-version",
        INVALID,
        "lineage[0]: no such version, or you may not see it",
        _field("lineage[0]", "no such version, or you may not see it"),
        path=ASSET + r"/versions(/\{number\}/(evaluations|lineage))?",
        methods=("post",),
    ),
    ProblemType(
        400,
        "idempotency-key-missing",
        INVALID,
        "Send an Idempotency-Key header.",
        path=r"/api/v1/promotions",
        methods=("post",),
    ),
    ProblemType(
        400,
        "service-account-cannot-review",
        REFUSED,
        "A service account cannot hold review.",
        _field("role", "a service account cannot hold review"),
        path=ASSET + r"/permissions",
        methods=("post",),
    ),
    ProblemType(
        400,
        "auditor-cannot-hold-role",
        REFUSED,
        "An auditor holds no role on an asset.",
        _field("principal", "an auditor holds no role on an asset"),
        path=ASSET + r"/permissions|/api/v1/users/\{username\}",
        methods=("post", "patch"),
    ),
    ProblemType(
        400,
        "auditor-cannot-write",
        REFUSED,
        "An auditor cannot be a superuser.",
        _field("is_superuser", "an auditor cannot be a superuser"),
        path=r"/api/v1/users/\{username\}",
        methods=("patch",),
    ),
    ProblemType(
        400,
        "service-account-cannot-hold-global-role",
        REFUSED,
        "A service account holds no global role.",
        _field("global_role", "a service account holds no global role"),
        path=r"/api/v1/users/\{username\}",
        methods=("patch",),
    ),
    # 401 ------------------------------------------------------------------------------------------------
    ProblemType(401, "not-authenticated", "Unauthorized", "Authentication credentials were not provided."),
    ProblemType(401, "token-invalid", "Unauthorized", "The token is not valid."),
    ProblemType(401, "token-expired", "Unauthorized", "The token expired at 2026-11-26T00:00:00+00:00."),
    ProblemType(401, "token-revoked", "Unauthorized", "The token has been revoked."),
    ProblemType(
        401,
        "id-token-invalid",
        "The ID token is not accepted",
        "The ID token's audience is not accepted.",
        path=OIDC_EXCHANGE,
        methods=("post",),
    ),
    ProblemType(
        401,
        "id-token-replayed",
        "The ID token is not accepted",
        "The ID token has been exchanged already; request a new one.",
        path=OIDC_EXCHANGE,
        methods=("post",),
    ),
    # 403 ------------------------------------------------------------------------------------------------
    ProblemType(
        403, "insufficient-scope", "Forbidden", "The token lacks the 'read' scope.", methods=("get",)
    ),
    ProblemType(
        403, "insufficient-scope", "Forbidden", "The token lacks the 'write' scope.", methods=WRITE_METHODS
    ),
    ProblemType(403, "forbidden", "Forbidden", "CSRF Failed: CSRF token missing.", methods=WRITE_METHODS),
    ProblemType(403, "permission-denied", "Not allowed", "You may not do this with your roles."),
    ProblemType(
        403,
        "self-approval-forbidden",
        "Not allowed",
        "You requested this promotion; someone else must review it.",
        path=r"/api/v1/promotions/\{id\}/(approve|reject)",
    ),
    ProblemType(
        403,
        "author-approval-forbidden",
        "Not allowed",
        "You registered this version; the policy does not let its author review it.",
        path=r"/api/v1/promotions/\{id\}/(approve|reject)",
    ),
    ProblemType(
        403,
        "not-an-eligible-reviewer",
        "Not allowed",
        "You hold no review grant on this asset.",
        path=r"/api/v1/promotions/\{id\}/(approve|reject)",
    ),
    ProblemType(
        403,
        "service-account-cannot-review",
        "Not allowed",
        "A service account never reviews.",
        path=r"/api/v1/promotions/\{id\}/(approve|reject)",
    ),
    ProblemType(
        403,
        "review-token-forbidden",
        "Not allowed",
        "A token with the review scope is made only by its person, signed in.",
        path=r"/api/v1/tokens",
        methods=("post",),
    ),
    ProblemType(
        403,
        "token-exceeds-credential",
        "Not allowed",
        "scopes: a token cannot give a scope it lacks",
        _field("scopes", "a token cannot give a scope it lacks"),
        path=r"/api/v1/tokens",
        methods=("post",),
    ),
    ProblemType(
        403,
        "no-trust-policy",
        "Not allowed",
        "No trust policy accepts this ID token.",
        path=OIDC_EXCHANGE,
        methods=("post",),
    ),
    # 404 ------------------------------------------------------------------------------------------------
    ProblemType(404, "not-found", "Not found", "Not found.", path=r".*\{.*"),
    ProblemType(  # the asset a body names (a policy's, a promotion's, a webhook's), missing or not visible
        404,
        "not-found",
        "Not found",
        "Not found.",
        path=r"/api/v1/(policies|promotions|webhooks)",
        methods=("post",),
    ),
    ProblemType(
        404,
        "stage-empty",
        "Not found",
        "No version of model/credit-scorer is in production.",
        path=ASSET + r"/stages/\{stage\}",
        methods=("get",),
    ),
    ProblemType(
        404,
        "no-checkpoint",
        "Not found",
        "No signed checkpoint at size 42.",
        path=r"/api/v1/audit/(checkpoint|proof/.*)",
        methods=("get",),
    ),
    # 406 ------------------------------------------------------------------------------------------------
    ProblemType(406, "not-acceptable", "Not Acceptable", "Could not satisfy the request Accept header."),
    # 409 ------------------------------------------------------------------------------------------------
    ProblemType(
        409,
        "duplicate-name",
        CONFLICT,
        "A model named 'credit-scorer' already exists.",
        # Names are chosen when created, and a trust policy's may be changed.
        path=r"/api/v1/(models|prompts|datasets|service-accounts|trust-policies)(/\{id\})?",
        methods=("post", "patch"),
    ),
    ProblemType(
        409,
        "asset-archived",
        CONFLICT,
        "model/credit-scorer is archived; it accepts no changes.",
        path=ASSET + r"(/.+)?|/api/v1/promotions",
        methods=BODY_METHODS,
    ),
    ProblemType(
        409,
        "lineage-cycle",
        CONFLICT,
        "The new edge would close a cycle.",
        path=VERSION + r"/lineage",
        methods=("post",),
    ),
    ProblemType(
        409,
        "duplicate-edge",
        CONFLICT,
        "This lineage edge already exists.",
        path=VERSION + r"/lineage",
        methods=("post",),
    ),
    ProblemType(
        409,
        "stage-protected",
        CONFLICT,
        "Stage 'production' is protected: it changes only through an approved promotion "
        "(POST /api/v1/promotions).",
        path=ASSET + r"/stages/\{stage\}",
        methods=("put",),
    ),
    ProblemType(
        409,
        "already-in-stage",
        CONFLICT,
        "model/credit-scorer v3 is already in production.",
        {"current_version": 3},
        path=ASSET + r"/stages/\{stage\}|/api/v1/promotions",
        methods=("put", "post"),
    ),
    ProblemType(
        409,
        "duplicate-grant",
        CONFLICT,
        "user bob already holds review on model/credit-scorer.",
        path=ASSET + r"/permissions",
        methods=("post",),
    ),
    ProblemType(
        409,
        "no-such-grant",
        CONFLICT,
        "user bob does not hold review on model/credit-scorer.",
        path=ASSET + r"/permissions/.*",
        methods=("delete",),
    ),
    ProblemType(
        409,
        "already-a-member",
        CONFLICT,
        "bob is already a member of team fraud.",
        path=r"/api/v1/teams/\{team\}/members",
        methods=("post",),
    ),
    ProblemType(
        409,
        "not-a-member",
        CONFLICT,
        "bob is not a member of team fraud.",
        path=r"/api/v1/teams/\{team\}/members/\{user\}",
        methods=("delete",),
    ),
    ProblemType(
        409,
        "last-admin",
        CONFLICT,
        "The change would leave no active registry admin.",
        path=r"/api/v1/users/\{username\}",
        methods=("patch",),
    ),
    ProblemType(
        409,
        "token-revoked",
        CONFLICT,
        "The token is already revoked.",
        path=r"/api/v1/tokens/\{id\}/revoke",
        methods=("post",),
    ),
    ProblemType(
        409,
        "duplicate-policy",
        CONFLICT,
        "A policy for this scope and stage exists already; change it instead.",
        path=r"/api/v1/policies",
        methods=("post",),
    ),
    ProblemType(
        409,
        "no-policy",
        CONFLICT,
        "No policy governs promotion of model/credit-scorer into production; a manager must define one.",
        path=r"/api/v1/promotions",
        methods=("post",),
    ),
    ProblemType(
        409,
        "already-decided",
        CONFLICT,
        "You have already reviewed this request.",
        path=r"/api/v1/promotions/\{id\}/(approve|reject)",
        methods=("post",),
    ),
    ProblemType(
        409,
        "request-not-pending",
        CONFLICT,
        "Promotion #12 is rejected; it can no longer change this way.",
        {"current_state": "rejected"},
        path=r"/api/v1/promotions/\{id\}/.+",
        methods=("post",),
    ),
    ProblemType(
        409,
        "log-inconsistent",
        CONFLICT,
        "The log does not match its signed checkpoints; run audit_verify.",
        path=r"/api/v1/audit/proof/.*",
        methods=("get",),
    ),
    ProblemType(
        409,
        "audit-signing-refused",
        CONFLICT,
        "No bundle can be signed: audit signing key missing",
        path=r"/api/v1/audit/export",
        methods=("get",),
    ),
    # 429 ------------------------------------------------------------------------------------------------
    ProblemType(
        429,
        "throttled",
        "Too Many Requests",
        "Too many refused ID tokens from this address; try again in 240 seconds.",
        path=OIDC_EXCHANGE,
        methods=("post",),
    ),
    # 503 ------------------------------------------------------------------------------------------------
    ProblemType(
        503,
        "service-unavailable",
        "Service unavailable",
        "The database is unavailable. Try again in 5 seconds.",
    ),
    # 413, 415 -------------------------------------------------------------------------------------------
    ProblemType(
        413,
        "too-large",
        "Request Entity Too Large",
        "The body is larger than 2621440 bytes.",
        methods=BODY_METHODS,
    ),
    ProblemType(
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
        'Unsupported media type "text/plain" in request.',
        methods=BODY_METHODS,
    ),
    # 422 ------------------------------------------------------------------------------------------------
    ProblemType(
        422,
        "gate-failed",
        UNPROCESSABLE,
        "Gates failed: accuracy is 0.91, needs >= 0.92",
        {
            "failed_gates": [
                {
                    "gate": {
                        "type": "metric",
                        "metric": "accuracy",
                        "op": ">=",
                        "value": 0.92,
                        "source": "version",
                    },
                    "passed": False,
                    "actual": 0.91,
                    "message": "accuracy is 0.91, needs >= 0.92",
                }
            ]
        },
        path=r"/api/v1/promotions",
        methods=("post",),
    ),
    ProblemType(
        422,
        "rollback-required",
        UNPROCESSABLE,
        "model/credit-scorer v2 is older than model/credit-scorer v3, which is in production; send rollback: "
        "true to roll back.",
        {"current_version": 3},
        path=r"/api/v1/promotions",
        methods=("post",),
    ),
    ProblemType(
        422,
        "idempotency-key-reused",
        UNPROCESSABLE,
        "This Idempotency-Key was used with another body; use a new key for a new request.",
        path=r"/api/v1/promotions",
        methods=("post",),
    ),
    ProblemType(
        422,
        "comment-required",
        UNPROCESSABLE,
        "Say why you reject the request.",
        path=r"/api/v1/promotions/\{id\}/reject",
        methods=("post",),
    ),
]


def problems_for(path: str, method: str, *, has_body: bool, paginated: bool) -> dict[int, list[ProblemType]]:
    """The problem types an operation can answer, by status."""
    found: dict[int, list[ProblemType]] = {}
    for problem in PROBLEM_TYPES:
        if not problem.applies(path, method):
            continue
        needs_body = problem.status in (413, 415) or problem.type in ("invalid-json", "too-deep")
        if needs_body and not has_body:
            continue
        if problem.type == "invalid-cursor" and not paginated:
            continue
        found.setdefault(problem.status, []).append(problem)
    return dict(sorted(found.items()))


def _paginated(operation: dict) -> bool:
    for response in operation.get("responses", {}).values():
        for media in response.get("content", {}).values():
            if "Paginated" in media.get("schema", {}).get("$ref", ""):
                return True
    return False


def problem_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation lists its error answers (see the module)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            found = problems_for(
                path, method, has_body="requestBody" in operation, paginated=_paginated(operation)
            )
            responses = operation.setdefault("responses", {})
            for status, problems in found.items():
                examples = {}
                for problem in problems:
                    key = problem.type if problem.type not in examples else f"{problem.type}-{len(examples)}"
                    examples[key] = {"summary": problem.type, "value": problem.example()}
                answer = {
                    "description": STATUS_DESCRIPTIONS[status],
                    "content": {
                        PROBLEM_MEDIA_TYPE: {
                            "schema": {"$ref": "#/components/schemas/Problem"},
                            "examples": examples,
                        }
                    },
                }
                if status in (429, 503):
                    answer["headers"] = {
                        "Retry-After": {
                            "description": "Seconds to wait before sending the same request again.",
                            "schema": {"type": "integer"},
                        }
                    }
                responses.setdefault(str(status), answer)
    return result
