"""Request id: taken from X-Request-ID when the caller sends a sane one, else generated; echoed back.
NUL characters in the path or the headers: refused before anything reads them."""

import re
import uuid

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
