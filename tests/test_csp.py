"""core.csp.CSPMiddleware sets exactly the headers django-csp's own middleware sets, whether it builds the
policy once (no nonce, no per-view policy) or hands the answer to the library."""

import csp.middleware
import pytest
from csp.constants import NONCE, SELF
from csp.middleware import CSPMiddleware as LibraryMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from core.csp import CSPMiddleware

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


def _answer(status=200, **attributes):
    def view(request):
        response = HttpResponse("x", status=status)
        for name, value in attributes.items():
            setattr(response, name, value)
        return response

    return view


def headers(middleware_class, view, *, path="/api/v1/models", nonce=False):
    request = RequestFactory().get(path)
    middleware = middleware_class(view)
    middleware.process_request(request)
    if nonce:
        str(request.csp_nonce)  # a template used the nonce
    response = middleware.process_response(request, view(request))
    after_write = request.csp_nonce
    return [response.get(name) for name in HEADERS], bool(after_write), response


CASES = {
    "plain answer": ({}, {}),
    "nonce used": ({"nonce": True}, {}),
    "view's update": ({}, {"_csp_update": {"img-src": ["https://img.example"]}}),
    "view's replace": ({}, {"_csp_replace": {"default-src": ["'none'"]}}),
    "view's config": ({}, {"_csp_config": {"default-src": ["'self'"]}}),
    "exempt": ({}, {"_csp_exempt": True}),
    "report-only update": ({}, {"_csp_update_ro": {"img-src": ["https://img.example"]}}),
    "404": ({}, {"status_code": 404}),
    "excluded path": ({"path": "/excluded/page"}, {}),
}
REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF], "script-src": [SELF, NONCE]}}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("report_only", [None, REPORT_ONLY])
@pytest.mark.parametrize("case", list(CASES))
def test_the_same_headers_as_django_csp(settings, monkeypatch, case, debug, report_only):
    monkeypatch.setattr(csp.middleware.os, "urandom", lambda size: bytes(size))  # the same nonce for both
    settings.DEBUG = debug
    policy = dict(settings.CONTENT_SECURITY_POLICY)
    policy["EXCLUDE_URL_PREFIXES"] = ["/excluded"]
    settings.CONTENT_SECURITY_POLICY = policy
    if report_only:
        settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = report_only
    request_options, attributes = CASES[case]
    view = _answer(**attributes)
    for _ in range(2):  # the second answer is served from what the first built
        ours, theirs = (
            headers(CSPMiddleware, view, **request_options),
            headers(LibraryMiddleware, view, **request_options),
        )
        assert ours[:2] == theirs[:2]


def test_a_changed_setting_is_seen(settings):
    first = headers(CSPMiddleware, _answer())[0][0]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    changed = headers(CSPMiddleware, _answer())[0][0]
    assert changed == "default-src 'none'" != first


def test_the_nonce_cannot_be_added_after_the_header_is_written():
    request = RequestFactory().get("/api/v1/models")
    middleware = CSPMiddleware(_answer())
    middleware.process_request(request)
    middleware.process_response(request, _answer()(request))
    with pytest.raises(Exception, match="not available after the CSP header"):
        str(request.csp_nonce)
