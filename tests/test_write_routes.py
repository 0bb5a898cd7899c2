"""Every write route of the API, read from the URL conf: one audit event per change, none on failure.

A write route added later without a row in WRITES fails test_every_write_route_has_a_row.
"""

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from accounts.models import TrustPolicy, User
from accounts.services import token_create, token_revoke
from approvals.models import OutboxMessage
from approvals.services import promotion_approve, promotion_request
from audit.models import AuditEvent
from core.source import Source
from registry.models import AssetKind, Stage
from tests.factories import AssetFactory, PolicyFactory, ServiceAccountFactory, UserFactory, VersionFactory
from tests.oidc_issuer import github_claims
from tests.routes import route_methods, url_for, version_body
from webhooks.models import WebhookSubscription, new_secret


def write_routes():
    return route_methods(("post", "put", "patch", "delete"))


# (generic route, method) → (good URL parts, good body, bad URL parts, bad body). The refused call must change
# nothing; the good one must write exactly one audit event. URL parts fill the route's placeholders.
NAME = {"<str:name>": "a", "<int:number>": "1", "<str:stage>": "staging"}
PENDING = {"<int:pk>": "pending"}
APPROVED = {"<int:pk>": "approved"}
POLICY = {"<int:pk>": "policy"}
WEBHOOK = {"<int:pk>": "webhook"}
TRUST = {"<int:pk>": "trust"}
TRUST_BODY = {
    "name": "ci-main",
    "provider": "github",
    "audience": "https://registry.example.test",
    "conditions": {"repository": "acme/fraud"},
    "account": "ci",
    "scopes": ["read"],
}
ISSUER = {}  # the local OIDC issuer of the running test (fixture local_issuer)
HOOK_URL = "https://hooks.example.org/registry"  # allow-listed below: never resolved, never sent to
GRANT = {**NAME, "<str:principal_type>": "user", "<str:principal>": "bob"}
WRITES = {
    ("{kind}", "post"): (NAME, lambda kind: {"name": "new-one"}, NAME, {"name": "Bad Name"}),
    ("{kind}/<str:name>", "patch"): (NAME, lambda kind: {"description": "changed"}, NAME, {"kind": "prompt"}),
    ("{kind}/<str:name>/archive", "post"): (
        NAME,
        lambda kind: {"reason": "retired"},
        NAME,
        {"reason": ["x"]},
    ),
    ("{kind}/<str:name>/versions", "post"): (
        NAME,
        lambda kind: version_body(kind, "new"),
        NAME,
        {"digest": "nope"},
    ),
    ("{kind}/<str:name>/versions/<int:number>", "patch"): (
        NAME,
        lambda kind: {"tags": ["candidate"]},
        NAME,
        {"uri": "s3://elsewhere"},
    ),
    ("{kind}/<str:name>/versions/<int:number>/evaluations", "post"): (
        NAME,
        lambda kind: {"name": "nightly", "metrics": {"auc": 0.9}, "dataset": {"name": "ds", "version": 1}},
        NAME,
        {"name": "nightly", "metrics": {"auc": "high"}},
    ),
    ("{kind}/<str:name>/versions/<int:number>/lineage", "post"): (
        NAME,
        lambda kind: {"relation": "evaluated_on", "kind": "dataset", "name": "ds", "version": 1},
        NAME,
        {"relation": "evaluated_on", "kind": "dataset", "name": "ds", "version": 9},
    ),
    ("{kind}/<str:name>/stages/<str:stage>", "put"): (
        NAME,
        lambda kind: {"version": 2},
        NAME,
        {"version": 0},
    ),
    ("{kind}/<str:name>/permissions", "post"): (
        NAME,
        lambda kind: {"principal_type": "user", "principal": "bob", "role": "contribute"},
        NAME,
        {"principal_type": "user", "principal": "nobody", "role": "view"},
    ),
    ("{kind}/<str:name>/permissions/<str:principal_type>/<str:principal>/<str:role>", "delete"): (
        {**GRANT, "<str:role>": "view"},
        lambda kind: None,
        {**GRANT, "<str:role>": "manage"},
        None,
    ),
    ("service-accounts", "post"): ({}, lambda kind: {"name": "ci-two"}, {}, {"name": "Bad Name"}),
    ("tokens", "post"): (
        {},
        lambda kind: {"account": "ci", "name": "deploy", "scopes": ["read"]},
        {},
        {"account": "ci", "name": "deploy", "scopes": ["fly"]},
    ),
    ("tokens/<int:pk>/revoke", "post"): (
        {"<int:pk>": "live"},
        lambda kind: None,
        {"<int:pk>": "revoked"},
        None,
    ),
    ("promotions", "post"): (
        {},
        lambda kind: {
            "kind": "model",
            "name": "a",
            "version": 1,
            "stage": "production",
            "justification": "go",
        },
        {},
        {"kind": "model", "name": "a", "version": 1, "stage": "nowhere", "justification": "go"},
        2,  # the new request, and the pending one it supersedes
    ),
    # The production policy needs two approvals: one approval is one change.
    ("promotions/<int:pk>/approve", "post"): (PENDING, lambda kind: {}, PENDING, {"comment": ["x"]}),
    ("promotions/<int:pk>/reject", "post"): (PENDING, lambda kind: {"comment": "no"}, PENDING, {}),
    ("promotions/<int:pk>/cancel", "post"): (PENDING, lambda kind: {}, PENDING, {"reason": ["x"]}),
    # Applying is two changes, each with its event: the stage moves, and the request is applied.
    ("promotions/<int:pk>/apply", "post"): (APPROVED, lambda kind: None, PENDING, None, 2),
    ("policies", "post"): (
        {},
        lambda kind: {"kind": "prompt", "stage": "production", "required_approvals": 2},
        {},
        {"stage": "production", "required_approvals": 0},
    ),
    ("policies/<int:pk>", "patch"): (
        POLICY,
        lambda kind: {"required_approvals": 3},
        POLICY,
        {"stage": "staging"},
    ),
    ("policies/<int:pk>", "delete"): (POLICY, lambda kind: None, {"<int:pk>": "999999"}, None),
    ("teams/<str:team>/members", "post"): (
        {"<str:team>": "crew"},
        lambda kind: {"user": "bob"},
        {"<str:team>": "crew"},
        {"user": "nobody"},
    ),
    # Removing bob, who is not a member, is refused (409 not-a-member).
    ("teams/<str:team>/members/<str:user>", "delete"): (
        {"<str:team>": "crew", "<str:user>": "ci"},
        lambda kind: None,
        {"<str:team>": "crew", "<str:user>": "bob"},
        None,
    ),
    # bob holds a grant, so he cannot become an auditor (400 auditor-cannot-hold-role).
    ("users/<str:username>", "patch"): (
        {"<str:username>": "bob"},
        lambda kind: {"global_role": "admin", "can_create_assets": True},
        {"<str:username>": "bob"},
        {"global_role": "auditor"},
    ),
    ("trust-policies", "post"): ({}, lambda kind: TRUST_BODY, {}, {**TRUST_BODY, "scopes": ["review"]}),
    ("trust-policies/<int:pk>", "patch"): (TRUST, lambda kind: {"enabled": False}, TRUST, {"account": "bob"}),
    ("trust-policies/<int:pk>", "delete"): (TRUST, lambda kind: None, {"<int:pk>": "999999"}, None),
    # The exchange needs no credential: a token the trust policy of arrange() accepts, or a forged one.
    ("auth/oidc/token", "post"): (
        {},
        lambda kind: {"token": ISSUER["issuer"].token(**github_claims())},
        {},
        {"token": "not-a-jwt"},
    ),
    ("webhooks", "post"): (
        {},
        lambda kind: {"url": HOOK_URL, "events": ["*"], "asset": "model/a"},
        {},
        {"url": HOOK_URL, "events": ["asset.exploded"], "asset": "model/a"},
    ),
    ("webhooks/<int:pk>", "patch"): (WEBHOOK, lambda kind: {"description": "x"}, WEBHOOK, {"events": []}),
    ("webhooks/<int:pk>", "delete"): (WEBHOOK, lambda kind: None, {"<int:pk>": "999999"}, None),
    ("webhooks/<int:pk>/deliveries/<int:delivery>/redeliver", "post"): (
        {**WEBHOOK, "<int:delivery>": "delivery"},
        lambda kind: None,
        {**WEBHOOK, "<int:delivery>": "999999"},
        None,
    ),
}


@pytest.fixture(autouse=True)
def webhook_host_allowed(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["hooks.example.org"]


@pytest.fixture(autouse=True)
def local_issuer(oidc_issuer):
    ISSUER["issuer"] = oidc_issuer
    yield
    ISSUER.clear()


def test_every_write_route_has_a_row():
    generic = {(route, method) for route, _, method in write_routes()}
    assert generic, "no write routes found: the URL conf walk is broken"
    assert generic == set(WRITES)


def arrange(kind):
    """Dataset "ds" v1; asset "a" of kind with v1 and v2; bob viewing it; service account ci (team crew) with
    tokens."""
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="ds"))
    asset = AssetFactory(kind=kind or AssetKind.MODEL, name="a")
    for _ in range(2):
        VersionFactory(asset=asset, **({"template": "Say {{thing}}"} if kind == AssetKind.PROMPT else {}))
    bob = UserFactory(username="bob")
    assign_perm("registry.view_asset", bob, asset)
    ci = ServiceAccountFactory(username="ci")
    ci.groups.add(Group.objects.create(name="crew"))
    live, _ = token_create(actor=None, source=Source.cli(), account=ci, name="live", scopes=["read"])
    revoked, _ = token_create(actor=None, source=Source.cli(), account=ci, name="old", scopes=["read"])
    token_revoke(actor=None, source=Source.cli(), token=revoked)
    # Promotions requested by ci: one pending for production (two approvals), one approved for staging.
    admin = User.objects.get(username="root")
    assign_perm("registry.request_promotion_asset", ci, asset)
    assign_perm("registry.review_asset", admin, asset)
    assign_perm("registry.review_asset", bob, asset)
    production, staging = Stage.objects.get(name="production"), Stage.objects.get(name="staging")
    policy = PolicyFactory(asset=asset, stage=production, required_approvals=2)
    PolicyFactory(asset=asset, stage=staging, apply_on_approval=False)
    v1, v2 = asset.versions.order_by("number")
    webhook = WebhookSubscription.objects.create(
        url=HOOK_URL, events=["*"], asset=asset, secret=new_secret(), created_by=admin
    )
    trust = TrustPolicy.objects.create(
        name="ci-trust",
        provider="github",
        issuer=ISSUER["issuer"].url,
        audience="https://registry.example.test",
        conditions={"repository": "acme/fraud"},
        account=ci,
        scopes=["read"],
    )
    approved = promotion_request(
        actor=ci, source=Source.cli(), asset=asset, version=v1, stage=staging, justification="try"
    )
    promotion_approve(actor=bob, source=Source.cli(), promotion_id=approved.pk)
    pending = promotion_request(
        actor=ci, source=Source.cli(), asset=asset, version=v2, stage=production, justification="ship"
    )
    return {
        "live": str(live.pk),
        "revoked": str(revoked.pk),
        "pending": str(pending.pk),
        "approved": str(approved.pk),
        "policy": str(policy.pk),
        "webhook": str(webhook.pk),
        "trust": str(trust.pk),
        "delivery": str(OutboxMessage.objects.filter(webhook=str(webhook.pk)).first().pk),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "kind", "method"), write_routes())
def test_write_route_audits_once_and_refusal_changes_nothing(api, route, kind, method):
    ids = arrange(kind)
    good_parts, good, bad_parts, bad, *changes = WRITES[(route, method)]
    before = AuditEvent.objects.count()
    headers = {"HTTP_IDEMPOTENCY_KEY": f"key-{route}-{method}"}

    refused = getattr(api, method)(url_for(route, kind, bad_parts, ids), bad, format="json", **headers)
    assert 400 <= refused.status_code < 500, refused.content
    assert AuditEvent.objects.count() == before

    response = getattr(api, method)(
        url_for(route, kind, good_parts, ids), good(kind), format="json", **headers
    )
    assert response.status_code in (200, 201, 202, 204), response.content
    assert AuditEvent.objects.count() == before + (changes[0] if changes else 1)
