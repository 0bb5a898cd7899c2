"""Every write route of the API, read from the URL conf: one audit event per change, none on failure.

A write route added later without a row in WRITES fails test_every_write_route_has_a_row.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from audit.models import AuditEvent
from registry.api.serializers import PLURAL
from registry.models import AssetKind
from tests.factories import AssetFactory, VersionFactory, digest_for

WRITE_METHODS = {"post", "put", "patch", "delete"}


def api_routes(resolver=None, prefix=""):
    """(route pattern, view class) for every route under /api/v1/."""
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry, pattern)
        elif isinstance(entry, URLPattern) and pattern.startswith("api/v1/"):
            yield pattern, entry.callback.view_class


def write_routes():
    """(generic route, kind, method) with the kind's plural replaced by {kind}."""
    plural_to_kind = {plural: kind for kind, plural in PLURAL.items()}
    rows = []
    for pattern, view_class in api_routes():
        head, _, rest = pattern.removeprefix("api/v1/").partition("/")
        kind = plural_to_kind.get(head)
        generic = f"{{kind}}/{rest}".rstrip("/") if kind else pattern.removeprefix("api/v1/")
        for method in sorted(
            WRITE_METHODS & {m for m in view_class.http_method_names if hasattr(view_class, m)}
        ):
            rows.append((generic, kind, method))
    return rows


def version_body(kind, seed):
    if kind == AssetKind.PROMPT:
        return {"template": f"Say {{{{thing}}}} {seed}"}
    body = {"digest": digest_for(seed)}
    if kind == AssetKind.DATASET:
        body["uri"] = f"s3://b/{seed}"
    return body


# generic route, method → (good body, bad body). The URL's {name} is "a", {number} is 1, {stage} staging.
WRITES = {
    ("{kind}", "post"): (lambda kind: {"name": "new-one"}, {"name": "Bad Name"}),
    ("{kind}/<str:name>", "patch"): (lambda kind: {"description": "changed"}, {"kind": "prompt"}),
    ("{kind}/<str:name>/archive", "post"): (lambda kind: {"reason": "retired"}, {"reason": ["x"]}),
    ("{kind}/<str:name>/versions", "post"): (lambda kind: version_body(kind, "new"), {"digest": "nope"}),
    ("{kind}/<str:name>/versions/<int:number>", "patch"): (
        lambda kind: {"tags": ["candidate"]},
        {"uri": "s3://elsewhere"},
    ),
    ("{kind}/<str:name>/versions/<int:number>/evaluations", "post"): (
        lambda kind: {"name": "nightly", "metrics": {"auc": 0.9}, "dataset": {"name": "ds", "version": 1}},
        {"name": "nightly", "metrics": {"auc": "high"}},
    ),
    ("{kind}/<str:name>/versions/<int:number>/lineage", "post"): (
        lambda kind: {"relation": "evaluated_on", "kind": "dataset", "name": "ds", "version": 1},
        {"relation": "evaluated_on", "kind": "dataset", "name": "ds", "version": 9},
    ),
    ("{kind}/<str:name>/stages/<str:stage>", "put"): (lambda kind: {"version": 2}, {"version": 0}),
}


def test_every_write_route_has_a_row():
    generic = {(route, method) for route, _, method in write_routes()}
    assert generic, "no write routes found: the URL conf walk is broken"
    assert generic == set(WRITES)


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "kind", "method"), write_routes())
def test_write_route_audits_once_and_refusal_changes_nothing(api, route, kind, method):
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="ds"))
    asset = AssetFactory(kind=kind, name="a")
    for _ in ("v1", "v2"):
        VersionFactory(asset=asset, **({"template": "Say {{thing}}"} if kind == AssetKind.PROMPT else {}))
    url = "/api/v1/" + route.format(kind=PLURAL[kind]).replace("<str:name>", "a").replace(
        "<int:number>", "1"
    ).replace("<str:stage>", "staging")
    good, bad = WRITES[(route, method)]
    before = AuditEvent.objects.count()

    refused = getattr(api, method)(url, bad, format="json")
    assert 400 <= refused.status_code < 500, refused.content
    assert AuditEvent.objects.count() == before

    response = getattr(api, method)(url, good(kind), format="json")
    assert response.status_code in (200, 201), response.content
    assert AuditEvent.objects.count() == before + 1
