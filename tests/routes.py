"""The API routes, read from the URL conf, for tests that must cover every route."""

from django.urls import URLPattern, URLResolver, get_resolver

from registry.api.serializers import PLURAL
from registry.models import AssetKind
from tests.factories import digest_for

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
PLURAL_TO_KIND = {plural: kind for kind, plural in PLURAL.items()}


def api_routes(resolver=None, prefix=""):
    """(route pattern, view class) for every route under /api/v1/."""
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry, pattern)
        elif isinstance(entry, URLPattern) and pattern.startswith("api/v1/"):
            yield pattern, entry.callback.view_class


def route_methods(methods=HTTP_METHODS):
    """(generic route, kind, method): routes mounted per kind have their plural replaced by {kind}."""
    rows = []
    for pattern, view_class in api_routes():
        head, _, rest = pattern.removeprefix("api/v1/").partition("/")
        kind = PLURAL_TO_KIND.get(head)
        generic = f"{{kind}}/{rest}".rstrip("/") if kind else pattern.removeprefix("api/v1/")
        for method in methods:
            if method in view_class.http_method_names and hasattr(view_class, method):
                rows.append((generic, kind, method))
    return rows


def url_for(route: str, kind, parts: dict, ids: dict | None = None) -> str:
    url = "/api/v1/" + (route.format(kind=PLURAL[kind]) if kind else route)
    for placeholder, value in parts.items():
        url = url.replace(placeholder, (ids or {}).get(value, value))
    assert "<" not in url, url
    return url


def version_body(kind, seed: str) -> dict:
    if kind == AssetKind.PROMPT:
        return {"template": f"Say {{{{thing}}}} {seed}"}
    body = {"digest": digest_for(seed)}
    if kind == AssetKind.DATASET:
        body["uri"] = f"s3://b/{seed}"
    return body
