"""Request id: taken from X-Request-ID when the caller sends a sane one, else generated; echoed back.
NUL characters in the path or the headers: refused before anything reads them. The app's own error pages
with DEBUG on."""

import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, JsonResponse

from core.logging import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        # Every log record made while serving the request carries the id (core/logging.py).
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class NulCharacterMiddleware:
    """A NUL character in the path or a header names nothing and fits no column (PostgreSQL text refuses it):
    the path answers 404, a header 400, before any view or query runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            raise Http404("The path contains a NUL character.")
        if any("\x00" in str(value) for key, value in request.META.items() if key.startswith("HTTP_")):
            detail = "A request header contains a NUL character."
            if request.path.startswith("/api/"):
                body = {"type": "invalid-header", "title": "Bad Request", "status": 400, "detail": detail}
                return JsonResponse(body, status=400, content_type="application/problem+json")
            return HttpResponseBadRequest(detail)
        return self.get_response(request)


class AppErrorPagesMiddleware:
    """With DEBUG on (`make run`), answer the app's own 404 and 500 pages (and the API's problems) instead of
    Django's debug pages, so that a developer sees what people will see. Does nothing with DEBUG off, where
    Django uses the same handlers (config/urls.py), nor with DJANGO_DEBUG_ERROR_PAGES=true, for a developer
    who wants Django's pages back. A crash's traceback is still logged in full by `django.request` (the
    console under `make run`). 403 needs nothing: Django answers it with the app's handler even in DEBUG.

    Last in MIDDLEWARE: it sees a view's exception first, and a path that matches no route (Django's resolver
    404, answered below every middleware) as a 404 response with no `resolver_match`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            self._active()
            and response.status_code == 404
            and getattr(request, "resolver_match", None) is None
        ):
            from core.views import page_not_found  # core.views imports core.api, which needs DRF's settings

            return page_not_found(request, Http404())
        return response

    def process_exception(self, request, exception):
        if not self._active() or isinstance(exception, PermissionDenied):
            return None
        from core.views import page_not_found, server_error

        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        # What Django's handler would log before answering 500: the traceback, for the developer's console.
        logging.getLogger("django.request").error(
            "Internal Server Error: %s",
            request.path,
            exc_info=(type(exception), exception, exception.__traceback__),
            extra={"status_code": 500, "request": request},
        )
        response = server_error(request)
        response._has_been_logged = True  # once, with the traceback: not again by the handler without it
        return response

    @staticmethod
    def _active() -> bool:
        return settings.DEBUG and not settings.DEBUG_ERROR_PAGES
