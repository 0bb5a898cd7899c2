"""Health checks, the landing page, and problem-details answers for unknown API paths and crashes."""

import logging

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views import defaults

from core.api import NOT_FOUND_BODY, PROBLEM_CONTENT_TYPE

logger = logging.getLogger(__name__)


def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the database answers, and the broker when one is configured. No error text leaks."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:
        logger.exception("readiness: database check failed")
        checks["database"] = "unavailable"
    if settings.CELERY_BROKER_URL:
        try:
            from celery import current_app

            with current_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except Exception:
            logger.exception("readiness: broker check failed")
            checks["broker"] = "unavailable"
    if checks["database"] == "ok":  # apps report their own checks (e.g. audit signing); core imports none
        for config in apps.get_app_configs():
            checks.update(getattr(config, "readiness", dict)())
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503)


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(NOT_FOUND_BODY, status=404, content_type=PROBLEM_CONTENT_TYPE)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        body = {
            "type": "server-error",
            "title": "Internal server error",
            "status": 500,
            "detail": "The server failed and changed nothing. Quote the X-Request-ID header to report it.",
        }
        return JsonResponse(body, status=500, content_type=PROBLEM_CONTENT_TYPE)
    return defaults.server_error(request)
