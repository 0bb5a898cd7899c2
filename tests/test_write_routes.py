"""Every write route of the API, read from the URL conf: one audit event per change, none on failure.

A write route added later without a row in WRITES fails test_every_write_route_has_a_row.
"""

import pytest
from guardian.shortcuts import assign_perm

from accounts.models import User
from accounts.services import token_create, token_revoke
from audit.models import AuditEvent
from core.source import Source
from registry.models import AssetKind
from tests.factories import AssetFactory, VersionFactory
from tests.routes import route_methods, url_for, version_body


def write_routes():
    return route_methods(("post", "put", "patch", "delete"))


# (generic route, method) → (good URL parts, good body, bad URL parts, bad body). The refused call must change
# nothing; the good one must write exactly one audit event. URL parts fill the route's placeholders.
NAME = {"<str:name>": "a", "<int:number>": "1", "<str:stage>": "staging"}
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
        {**GRANT, "<str:role>": "review"},
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
}


def test_every_write_route_has_a_row():
    generic = {(route, method) for route, _, method in write_routes()}
    assert generic, "no write routes found: the URL conf walk is broken"
    assert generic == set(WRITES)


def arrange(kind):
    """Dataset "ds" v1; asset "a" of kind with v1 and v2; bob viewing it; service account ci with tokens."""
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="ds"))
    asset = AssetFactory(kind=kind or AssetKind.MODEL, name="a")
    for _ in range(2):
        VersionFactory(asset=asset, **({"template": "Say {{thing}}"} if kind == AssetKind.PROMPT else {}))
    bob = User.objects.create_user("bob")
    assign_perm("registry.view_asset", bob, asset)
    ci = User.objects.create_user("ci", is_service_account=True)
    live, _ = token_create(actor=None, source=Source.cli(), account=ci, name="live", scopes=["read"])
    revoked, _ = token_create(actor=None, source=Source.cli(), account=ci, name="old", scopes=["read"])
    token_revoke(actor=None, source=Source.cli(), token=revoked)
    return {"live": str(live.pk), "revoked": str(revoked.pk)}


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "kind", "method"), write_routes())
def test_write_route_audits_once_and_refusal_changes_nothing(api, route, kind, method):
    ids = arrange(kind)
    good_parts, good, bad_parts, bad = WRITES[(route, method)]
    before = AuditEvent.objects.count()

    refused = getattr(api, method)(url_for(route, kind, bad_parts, ids), bad, format="json")
    assert 400 <= refused.status_code < 500, refused.content
    assert AuditEvent.objects.count() == before

    response = getattr(api, method)(url_for(route, kind, good_parts, ids), good(kind), format="json")
    assert response.status_code in (200, 201, 204), response.content
    assert AuditEvent.objects.count() == before + 1
