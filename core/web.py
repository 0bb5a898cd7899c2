"""Page plumbing shared by the server-rendered views of every app: the web Source, domain errors as HTTP
answers or messages, safe links, numbers for display, form errors in a sentence, and offset pagination.

The API has its own adapter for the same errors (core/api.py, problem details); pages answer with the 404 and
403 templates, or with a message on the page the change was made from, or (refusal_on_form) next to the
field of the form it is about, keeping what was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404

from core.exceptions import DomainError, Forbidden, NotFound
from core.source import Channel, Source

T = TypeVar("T")


def web_source(request) -> Source:
    """The Source of a change made from a page: the web channel, the session, the request's origin."""
    return Source.from_request(request, Channel.WEB)


def page_errors(view):
    """A view whose reads may refuse: NotFound answers the 404 page (the same for missing and invisible),
    Forbidden the 403 page. Refused changes are messages instead (`report`)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            raise Http404("Not found.") from None
        except Forbidden as exc:
            raise PermissionDenied(exc.detail) from None

    return wrapper


def report(request, change: Callable[[], T], done: str | Callable[[T], str]) -> T | None:
    """Run a change (a service call); a refusal becomes an error message, success the message `done`
    (a text, or a function of the change's result). Returns the result, or None when refused."""
    try:
        result = change()
    except DomainError as exc:
        messages.error(request, exc.detail)
        return None
    messages.success(request, done(result) if callable(done) else done)
    return result


def form_problem(form) -> str:
    """A form's errors in one sentence, for a message: `field: problem ...`."""
    return " ".join(f"{field}: {' '.join(problems)}" for field, problems in form.errors.items())


def in_words(message: str) -> str:
    """A service's message ("no account named 'x'") as a sentence for a page: capital first, full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" else message + "."


def refusal_on_form(form, exc: DomainError, fields_by_type: dict[str, str] | None = None) -> None:
    """Put a refused change's reasons on the form it came from: next to the fields they name (or, for a
    refusal naming no field of the form, above it), in words. The form stays bound: what was typed stays.

    fields_by_type names the field a refusal of some type is about when the service names none (e.g. a
    duplicate name is about the name field)."""
    placed = False
    for error in exc.errors:
        # A member of a field ("gates[1].op") shows at its field, saying which member.
        name = re.split(r"[.\[]", error.field, maxsplit=1)[0]
        if name in form.fields:
            where = "" if name == error.field else f" (at {error.field})"
            form.add_error(name, in_words(error.message) + where)
            placed = True
    if not placed:
        field = (fields_by_type or {}).get(exc.type)
        form.add_error(field if field in form.fields else None, in_words(exc.detail))


def web_link(url) -> str:
    """url if it is an http(s) address, else "": stored data is not trusted to be a harmless link (a
    `javascript:` address must not become one)."""
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return ""


def format_number(value) -> str:
    """A number for display: floats to six significant digits, integers as they are, nothing as —."""
    if value is None:
        return "—"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def paginate(request, queryset, per_page: int, param: str = "page") -> dict:
    """One page of queryset (two queries: the count and the rows), with links that keep the filters."""
    page: Page = Paginator(queryset, per_page).get_page(request.GET.get(param))

    def link(number: int) -> str:
        query = request.GET.copy()
        query[param] = number
        return "?" + query.urlencode()

    return {
        "page": page,
        "rows": list(page.object_list),
        "previous": link(page.previous_page_number()) if page.has_previous() else "",
        "next": link(page.next_page_number()) if page.has_next() else "",
    }
