"""Health checks, the landing page, and problem-details answers for unknown API paths and crashes."""

import logging
import sys

from django.http import JsonResponse
from django.views import defaults

from core import health, outage
from core.api import NOT_FOUND_BODY, PROBLEM_CONTENT_TYPE

logger = logging.getLogger(__name__)


def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the checks of core/health.py, each bounded in time. No error text leaks; failures are logged
    once per outage there."""
    checks = health.readiness()
    ready = all(value == health.OK for value in checks.values())
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )
    # The failure is logged by health.note when the outage starts; not again by django.request on every probe.
    response._has_been_logged = True
    return response


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(NOT_FOUND_BODY, status=404, content_type=PROBLEM_CONTENT_TYPE)
    return defaults.page_not_found(request, exception)


def server_error(request):
    # Called while the error is being handled: a dependency that is down answers 503, also when a middleware
    # met it (e.g. saving the session), where process_exception does not apply.
    error = sys.exc_info()[1]
    unavailable = outage.unavailable_response(request, error) if error is not None else None
    if unavailable is not None:
        return unavailable
    if request.path.startswith("/api/"):
        body = {
            "type": "server-error",
            "title": "Internal server error",
            "status": 500,
            "detail": "The server failed and changed nothing. Quote the X-Request-ID header to report it.",
        }
        return JsonResponse(body, status=500, content_type=PROBLEM_CONTENT_TYPE)
    return defaults.server_error(request)
