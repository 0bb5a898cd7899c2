"""Every API route, for every persona: the expected status, built from the URL conf.

A route added later without a row in ROUTES fails test_every_route_has_a_row.
"""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import GlobalRole, Scope, TrustPolicy
from accounts.services import token_create
from approvals.models import OutboxMessage
from approvals.services import promotion_request
from audit.log import checkpoint_make
from core.source import Source
from registry.models import AssetKind, Stage, StagePointer
from registry.permissions import CODENAMES, Role
from tests.factories import AssetFactory, PolicyFactory, ServiceAccountFactory, UserFactory, VersionFactory
from tests.routes import route_methods, url_for, version_body
from webhooks.models import WebhookSubscription, new_secret

PERSONAS = [
    "admin",
    "manager",
    "contributor",
    "reviewer",
    "viewer",
    "outsider",
    "auditor",
    "service_account",
    "anonymous",
]
# What each kind of route answers to each persona (in PERSONAS order).
EXPECT = {
    # Lists of assets, /me, own tokens: any signed-in caller.
    "signed_in": [200, 200, 200, 200, 200, 200, 200, 200, 401],
    # Reading an asset and anything under it: visible → 200, not visible → 404.
    "read": [200, 200, 200, 200, 200, 404, 200, 200, 401],
    # Creating an asset needs the global permission (the manager persona holds it).
    "create": [201, 201, 403, 403, 403, 403, 403, 403, 401],
    # Registering versions, evaluations, lineage, setting an unprotected stage.
    "contribute": [201, 201, 201, 403, 403, 404, 403, 201, 401],
    "contribute_200": [200, 200, 200, 403, 403, 404, 403, 200, 401],
    # Editing or archiving the asset; granting and revoking roles (the CI token lacks the manage scope).
    "manage": [200, 200, 403, 403, 403, 404, 403, 403, 401],
    "grant": [201, 201, 403, 403, 403, 404, 403, 403, 401],
    "ungrant": [204, 204, 403, 403, 403, 404, 403, 403, 401],
    "grants_read": [200, 200, 403, 403, 403, 404, 200, 403, 401],
    # Global administration: service accounts and other accounts' tokens.
    "admin_read": [200, 403, 403, 403, 403, 403, 200, 403, 401],
    "admin_create": [201, 403, 403, 403, 403, 403, 403, 403, 401],
    # Revoking the CI account's spare token: only admins see and may revoke it (auditors see, may not).
    "revoke": [200, 404, 404, 404, 404, 404, 403, 403, 401],
    # Requesting a promotion needs request_promotion (managers and admins have it too).
    "request": [201, 201, 403, 403, 403, 404, 403, 201, 401],
    # Reviewing needs an explicit review grant: admin and manager roles do not imply it; the CI token
    # has no review scope (and its account requested the promotion).
    "review": [403, 403, 403, 200, 403, 404, 403, 403, 401],
    # Cancelling: the requester (the CI account) or a manager.
    "cancel": [200, 200, 403, 403, 403, 404, 403, 200, 401],
    # Applying: the requester or a manager may, but the request is still pending: 409 for them.
    "apply": [409, 409, 403, 403, 403, 404, 403, 409, 401],
    "policy_create": [201, 201, 403, 403, 403, 404, 403, 403, 401],
    "policy_manage": [200, 200, 403, 403, 403, 404, 403, 403, 401],
    "policy_delete": [204, 204, 403, 403, 403, 404, 403, 403, 401],
    # The audit log: auditors and admins only.
    "audit": [200, 403, 403, 403, 403, 403, 200, 403, 401],
    # Team members, global roles and account flags: admins change them, auditors read them.
    "admin_change": [200, 403, 403, 403, 403, 403, 403, 403, 401],
    "admin_delete": [204, 403, 403, 403, 403, 403, 403, 403, 401],
    # Webhooks: managers of the asset and admins subscribe (the CI token lacks the manage scope); the
    # manager's webhook is seen by its creator, the asset's managers and admins only (others: 404).
    "webhook_create": [201, 201, 403, 403, 403, 404, 403, 403, 401],
    "webhook_read": [200, 200, 404, 404, 404, 404, 404, 404, 401],
    "webhook_change": [200, 200, 404, 404, 404, 404, 404, 403, 401],
    "webhook_delete": [204, 204, 404, 404, 404, 404, 404, 403, 401],
    "webhook_redeliver": [202, 202, 404, 404, 404, 404, 404, 403, 401],
    # The OIDC exchange takes no credential: an ID token that does not verify is refused alike for all.
    "exchange_refused": [401, 401, 401, 401, 401, 401, 401, 401, 401],
}
TRUST = {"<int:pk>": "trust"}
HOOK_URL = "https://hooks.example.org/registry"  # allow-listed below: never resolved, never sent to
WEBHOOK = {"<int:pk>": "webhook"}
NAME = {"<str:name>": "a", "<int:number>": "1", "<str:stage>": "staging"}
ROUTES = {
    ("{kind}", "get"): ("signed_in", NAME, None),
    ("{kind}", "post"): ("create", NAME, lambda kind: {"name": "fresh"}),
    ("{kind}/<str:name>", "get"): ("read", NAME, None),
    ("{kind}/<str:name>", "patch"): ("manage", NAME, lambda kind: {"description": "x"}),
    ("{kind}/<str:name>/archive", "post"): ("manage", NAME, lambda kind: {}),
    ("{kind}/<str:name>/versions", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/versions", "post"): ("contribute", NAME, lambda kind: version_body(kind, "m")),
    ("{kind}/<str:name>/versions/<int:number>", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/versions/<int:number>", "patch"): (
        "contribute_200",
        NAME,
        lambda kind: {"tags": ["x"]},
    ),
    ("{kind}/<str:name>/versions/<int:number>/evaluations", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/versions/<int:number>/evaluations", "post"): (
        "contribute",
        NAME,
        lambda kind: {"name": "nightly", "metrics": {"auc": 0.9}},
    ),
    ("{kind}/<str:name>/versions/<int:number>/lineage", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/versions/<int:number>/lineage", "post"): (
        "contribute",
        {**NAME, "<int:number>": "2"},
        lambda kind: {"relation": "derived_from", "kind": kind, "name": "a", "version": 1},
    ),
    ("{kind}/<str:name>/stages", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/stages/<str:stage>", "get"): ("read", NAME, None),
    ("{kind}/<str:name>/stages/<str:stage>", "put"): ("contribute_200", NAME, lambda kind: {"version": 2}),
    ("{kind}/<str:name>/permissions", "get"): ("grants_read", NAME, None),
    ("{kind}/<str:name>/permissions", "post"): (
        "grant",
        NAME,
        lambda kind: {"principal_type": "user", "principal": "outsider", "role": "view"},
    ),
    ("{kind}/<str:name>/permissions/<str:principal_type>/<str:principal>/<str:role>", "delete"): (
        "ungrant",
        {**NAME, "<str:principal_type>": "user", "<str:principal>": "viewer", "<str:role>": "view"},
        None,
    ),
    ("stages", "get"): ("signed_in", {}, None),
    ("me", "get"): ("signed_in", {}, None),
    ("service-accounts", "get"): ("admin_read", {}, None),
    ("service-accounts", "post"): ("admin_create", {}, lambda kind: {"name": "ci-new"}),
    ("tokens", "get"): ("signed_in", {}, None),
    ("tokens", "post"): ("admin_create", {}, lambda kind: {"account": "ci", "name": "t", "scopes": ["read"]}),
    ("tokens/<int:pk>/revoke", "post"): ("revoke", {"<int:pk>": "spare"}, lambda kind: {}),
    ("promotions", "get"): ("signed_in", {}, None),
    ("promotions", "post"): (
        "request",
        {},
        lambda kind: {
            "kind": kind,
            "name": "a",
            "version": 1,
            "stage": "production",
            "justification": "ship it",
        },
    ),
    ("promotions/<int:pk>", "get"): ("read", {"<int:pk>": "promotion"}, None),
    ("promotions/<int:pk>/approve", "post"): ("review", {"<int:pk>": "promotion"}, lambda kind: {}),
    ("promotions/<int:pk>/reject", "post"): (
        "review",
        {"<int:pk>": "promotion"},
        lambda kind: {"comment": "no"},
    ),
    ("promotions/<int:pk>/cancel", "post"): ("cancel", {"<int:pk>": "promotion"}, lambda kind: {}),
    ("promotions/<int:pk>/apply", "post"): ("apply", {"<int:pk>": "promotion"}, lambda kind: {}),
    ("policies", "get"): ("signed_in", {}, None),
    ("policies", "post"): (
        "policy_create",
        {},
        lambda kind: {"kind": kind, "name": "a", "stage": "staging", "required_approvals": 1},
    ),
    ("policies/<int:pk>", "get"): ("read", {"<int:pk>": "policy"}, None),
    ("policies/<int:pk>", "patch"): (
        "policy_manage",
        {"<int:pk>": "policy"},
        lambda kind: {"expiry_hours": 24},
    ),
    ("policies/<int:pk>", "delete"): ("policy_delete", {"<int:pk>": "policy"}, None),
    ("audit/events", "get"): ("audit", {}, None),
    ("audit/checkpoint", "get"): ("audit", {}, None),
    ("audit/checkpoints", "get"): ("audit", {}, None),
    ("audit/proof/inclusion", "get"): ("audit", {"?": "seq=1"}, None),
    ("audit/proof/consistency", "get"): ("audit", {"?": "from=first&to=last"}, None),
    ("audit/export", "get"): ("audit", {"?": "format=jsonl"}, None),
    ("teams/<str:team>/members", "get"): ("admin_read", {"<str:team>": "crew"}, None),
    ("teams/<str:team>/members", "post"): (
        "admin_create",
        {"<str:team>": "crew"},
        lambda kind: {"user": "outsider"},
    ),
    ("teams/<str:team>/members/<str:user>", "delete"): (
        "admin_delete",
        {"<str:team>": "crew", "<str:user>": "viewer"},
        None,
    ),
    ("users/<str:username>", "get"): ("admin_read", {"<str:username>": "outsider"}, None),
    ("users/<str:username>", "patch"): (
        "admin_change",
        {"<str:username>": "outsider"},
        lambda kind: {"can_create_assets": True},
    ),
    ("trust-policies", "get"): ("admin_read", {}, None),
    ("trust-policies", "post"): (
        "admin_create",
        {},
        lambda kind: {
            "name": "ci-main",
            "provider": "github",
            "audience": "https://registry.example.test",
            "conditions": {"repository": "acme/fraud"},
            "account": "ci",
            "scopes": ["read"],
        },
    ),
    ("trust-policies/<int:pk>", "get"): ("admin_read", TRUST, None),
    ("trust-policies/<int:pk>", "patch"): ("admin_change", TRUST, lambda kind: {"enabled": False}),
    ("trust-policies/<int:pk>", "delete"): ("admin_delete", TRUST, None),
    ("auth/oidc/token", "post"): ("exchange_refused", {}, lambda kind: {"token": "not-a-jwt"}),
    ("webhooks", "get"): ("signed_in", {}, None),
    ("webhooks", "post"): (
        "webhook_create",
        {},
        lambda kind: {"url": HOOK_URL, "events": ["*"], "asset": f"{kind}/a"},
    ),
    ("webhooks/<int:pk>", "get"): ("webhook_read", WEBHOOK, None),
    ("webhooks/<int:pk>", "patch"): ("webhook_change", WEBHOOK, lambda kind: {"description": "x"}),
    ("webhooks/<int:pk>", "delete"): ("webhook_delete", WEBHOOK, None),
    ("webhooks/<int:pk>/deliveries", "get"): ("webhook_read", WEBHOOK, None),
    ("webhooks/<int:pk>/deliveries/<int:delivery>/redeliver", "post"): (
        "webhook_redeliver",
        {**WEBHOOK, "<int:delivery>": "delivery"},
        None,
    ),
}


@pytest.fixture(autouse=True)
def webhook_host_allowed(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["hooks.example.org"]


def test_every_route_has_a_row():
    assert {(route, method) for route, _, method in route_methods()} == set(ROUTES)


def arrange(kind) -> tuple[dict[str, APIClient], dict[str, str]]:
    """Asset "a" (v1 in staging, v2) with one persona per role, and a client per persona."""
    kind = kind or AssetKind.MODEL
    asset = AssetFactory(kind=kind, name="a")
    for _ in range(2):
        VersionFactory(asset=asset, **({"template": "Say {{thing}}"} if kind == AssetKind.PROMPT else {}))
    StagePointer.objects.create(
        asset=asset,
        stage=Stage.objects.get(name="staging"),
        version=asset.versions.get(number=1),
        updated_at="2026-01-01T00:00:00Z",
    )
    users = {
        "admin": UserFactory(username="admin", global_role=GlobalRole.ADMIN),
        "auditor": UserFactory(username="auditor", global_role=GlobalRole.AUDITOR),
        "outsider": UserFactory(username="outsider"),
    }
    for persona, role in [
        ("manager", Role.MANAGE),
        ("contributor", Role.CONTRIBUTE),
        ("reviewer", Role.REVIEW),
        ("viewer", Role.VIEW),
    ]:
        users[persona] = UserFactory(username=persona)
        assign_perm(f"registry.{CODENAMES[role]}", users[persona], asset)
    users["manager"].user_permissions.add(Permission.objects.get(codename="add_asset"))
    users["viewer"].groups.add(Group.objects.create(name="crew"))
    ci = ServiceAccountFactory(username="ci")
    assign_perm(f"registry.{CODENAMES[Role.CONTRIBUTE]}", ci, asset)
    assign_perm(f"registry.{CODENAMES[Role.REQUEST_PROMOTION]}", ci, asset)
    _, token = token_create(
        actor=None,
        source=Source.cli(),
        account=ci,
        name="ci",
        scopes=[Scope.READ, Scope.WRITE, Scope.PROMOTE],
    )
    spare, _ = token_create(actor=None, source=Source.cli(), account=ci, name="spare", scopes=[Scope.READ])
    production = Stage.objects.get(name="production")
    webhook = WebhookSubscription.objects.create(
        url=HOOK_URL, events=["*"], asset=asset, secret=new_secret(), created_by=users["manager"]
    )
    policy = PolicyFactory(asset=asset, stage=production, required_approvals=1)
    promotion = promotion_request(
        actor=ci,
        source=Source.cli(),
        asset=asset,
        version=asset.versions.get(number=2),
        stage=production,
        justification="release",
    )
    clients = {}
    for persona, person in users.items():
        clients[persona] = APIClient()
        clients[persona].force_authenticate(person)
    clients["service_account"] = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    clients["anonymous"] = APIClient()
    first = checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    token_create(actor=None, source=Source.cli(), account=ci, name="more", scopes=[Scope.READ])
    last = checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    ids = {"spare": str(spare.pk), "promotion": str(promotion.pk), "policy": str(policy.pk)}
    ids["webhook"] = str(webhook.pk)
    ids["trust"] = str(
        TrustPolicy.objects.create(
            name="ci-trust",
            provider="github",
            issuer="https://token.actions.githubusercontent.com",
            audience="https://registry.example.test",
            conditions={"repository": "acme/fraud"},
            account=ci,
            scopes=["read"],
        ).pk
    )
    ids["delivery"] = str(OutboxMessage.objects.filter(webhook=str(webhook.pk)).first().pk)
    return clients, {**ids, "first": str(first.tree_size), "last": str(last.tree_size)}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("route", "kind", "method"), route_methods())
def test_route_answers_persona(route, kind, method, persona):
    clients, ids = arrange(kind)
    category, parts, body = ROUTES[(route, method)]
    query = parts.get("?", "")
    url = url_for(route, kind, {k: v for k, v in parts.items() if k != "?"}, ids)
    if query:
        url += "?" + "&".join(
            f"{name}={ids.get(value, value)}"
            for name, value in (pair.split("=") for pair in query.split("&"))
        )
    response = getattr(clients[persona], method)(
        url, body(kind or AssetKind.MODEL) if body else None, format="json", HTTP_IDEMPOTENCY_KEY="matrix-key"
    )
    expected = EXPECT[category][PERSONAS.index(persona)]
    assert response.status_code == expected, (category, response.content)
