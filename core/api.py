"""One error shape for the whole API: RFC 9457 problem details (application/problem+json).

Every refusal carries a stable `type` slug, a human `title` and `detail`, the HTTP `status`, and for input
problems an `errors` list of {field, message}.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from django.core import validators
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, metadata, serializers, status
from rest_framework.fields import ProhibitSurrogateCharactersValidator, SkipField, _UnvalidatedField
from rest_framework.relations import PKOnlyObject
from rest_framework.response import Response

from core.exceptions import DomainError, TooManyRequests
from core.pagination import CursorPagination
from core.parsers import TooLarge
from core.source import Channel, Source

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The body of every 404: identical whether the thing does not exist or may not be seen.
NOT_FOUND_BODY = {"type": "not-found", "title": "Not found", "status": 404, "detail": "Not found."}


def problem(status_code: int, type_: str, title: str, detail: str, **members) -> Response:
    body = {"type": type_, "title": title, "status": status_code, "detail": detail, **members}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _flatten(detail, prefix: str = "") -> list[dict]:
    """Turn DRF's nested error structure into [{field, message}] with dotted / indexed paths."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if isinstance(key, int):  # list serializers key their items' errors by index
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(_flatten(value, path))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item:
                out.extend(_flatten(item, f"{prefix}[{index}]"))
        return out
    return [{"field": prefix, "message": str(detail)}]


def problem_exception_handler(exc, context):
    # Imported here: rest_framework.views reads DEFAULT_METADATA_CLASS (RouteMetadata, below) on import,
    # so this module must be importable before it, e.g. by a serializer module that uses StrictInput.
    from rest_framework.views import exception_handler

    from core import outage

    if isinstance(exc, DomainError):
        members = dict(exc.extra)
        if exc.errors:
            members["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
        response = problem(exc.status, exc.type, exc.title, exc.detail, **members)
        if isinstance(exc, TooManyRequests):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, exceptions.NotFound) and str(exc.detail) == CursorPagination.invalid_cursor_message:
        return problem(400, "invalid-cursor", "The input is not valid", "The pagination cursor is not valid.")
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Response(dict(NOT_FOUND_BODY), status=404, content_type=PROBLEM_CONTENT_TYPE)
    dependency = outage.unavailable_dependency(exc)
    if dependency is not None:  # the database (or cache) cannot be reached: 503, Retry-After
        outage.met(dependency, exc)
        response = Response(outage.problem_body(dependency), status=503, content_type=PROBLEM_CONTENT_TYPE)
        return outage.finish(response)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):  # Django refused to read the body (DATA_UPLOAD_MAX_MEMORY_SIZE)
        exc = TooLarge()
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        summary = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return problem(400, "invalid-input", "The input is not valid", summary, errors=errors)

    response = exception_handler(exc, context)
    if response is None:
        return None
    slug = {
        status.HTTP_401_UNAUTHORIZED: "not-authenticated",
        status.HTTP_403_FORBIDDEN: "forbidden",
        status.HTTP_405_METHOD_NOT_ALLOWED: "method-not-allowed",
        status.HTTP_406_NOT_ACCEPTABLE: "not-acceptable",
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported-media-type",
        status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
    }.get(response.status_code, getattr(exc, "default_code", "error").replace("_", "-"))
    slug = getattr(exc, "problem_type", None) or slug
    detail = exc.detail if isinstance(getattr(exc, "detail", None), str) else str(exc)
    body = {
        "type": slug,
        "title": response.status_text,
        "status": response.status_code,
        "detail": str(detail),
    }
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


class RouteMetadata(metadata.BaseMetadata):
    """What `OPTIONS` answers on every route: its name, description and media types (the `Allow` header lists
    its methods). The request and response shapes are in the OpenAPI schema (`/api/schema/`); DRF's default
    metadata would instead look objects up with `get_object()`, which views here do not use."""

    def determine_metadata(self, request, view) -> dict:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }


def api_source(request) -> Source:
    """The audit source of an API call."""
    return Source.from_request(request, Channel.API)


_input_serializers = threading.local()


def validated(serializer_class, request) -> dict:
    """The request body checked by an input serializer (400 with every field error otherwise).

    A body whose every member is plainly valid (see QuickInput) is taken as the serializer would take it,
    without running it; any other body, and every refusal, goes through the serializer. One instance of each
    input serializer per thread checks them: a new one would deep-copy its declared fields (all of them,
    nested serializers included) on every request, most of what validating a small body costs. Validation
    keeps no state in the serializer or its fields but the three results reset here (`run_validation` builds
    a new dict every time; defaults are called anew), and no input serializer has a context, so the answer,
    error bodies included, is the one a new instance gives (tests/test_validated.py)."""
    serializers_here = _input_serializers.__dict__
    serializer = serializers_here.get(serializer_class)
    if serializer is None:
        serializer = serializers_here[serializer_class] = serializer_class(data=None)
    data = request.data
    plan = _quick_plans.get(serializer_class, _UNPLANNED)
    if plan is _UNPLANNED:
        plan = _quick_plans[serializer_class] = _quick_plan(serializer)
    if plan is not None and type(data) is dict:
        quick = _quick_validated(plan, data)
        if quick is not None:
            return quick
    serializer.initial_data = data
    for result in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(result, None)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# The quick path: what DRF's Serializer.run_validation does with a JSON object whose members all pass the
# checks below, with the serializer's own fields; it says None (ask the serializer) at the first doubt.
_UNPLANNED, NOT_QUICK = object(), object()
_quick_plans: dict = {}
_CHAR_VALIDATORS = (
    validators.MaxLengthValidator,
    validators.MinLengthValidator,
    validators.ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
)


def _plain_char_field(field) -> bool:
    if type(field) is not serializers.CharField:
        return False
    expected = 2 + (field.max_length is not None) + (field.min_length is not None)
    return len(field.validators) == expected and all(
        type(validator) in _CHAR_VALIDATORS for validator in field.validators
    )


def _quick_char(field):
    """A string that CharField.run_validation returns as it is: no surrounding whitespace to trim (ASCII,
    so no surrogate either), no NUL, not blank unless allowed, within the lengths."""
    max_length, min_length = field.max_length, field.min_length
    trim, allow_blank = field.trim_whitespace, field.allow_blank

    def check(value):
        if type(value) is not str or not value.isascii() or "\x00" in value:
            return NOT_QUICK
        if (trim and value != value.strip()) or (not value and not allow_blank):
            return NOT_QUICK
        if (max_length is not None and len(value) > max_length) or (
            min_length is not None and value and len(value) < min_length
        ):
            return NOT_QUICK
        return value

    return check


def _quick_list_of_char(field):
    """ListField(child=CharField()) without length limits: a list of quick strings, copied."""
    item = _quick_char(field.child)
    allow_empty = field.allow_empty

    def check(value):
        if type(value) is not list or (not value and not allow_empty):
            return NOT_QUICK
        for element in value:
            if item(element) is NOT_QUICK:
                return NOT_QUICK
        return list(value)

    return check


def _quick_field(field):
    """The quick check of a field (value -> validated value or NOT_QUICK), None if it has none. A field
    class may give its own as `quick_value(value)` (registry's JSONObjectField does)."""
    if field.source != field.field_name or field.read_only:
        return None
    if hasattr(field, "quick_value"):
        return field.quick_value
    if _plain_char_field(field):
        return _quick_char(field)
    if type(field) is serializers.ListField and not field.validators and _plain_char_field(field.child):
        return _quick_list_of_char(field)
    return None


def _quick_plan(serializer) -> list | None:
    """For each writable field in order: (name, field, quick check or None); None when the serializer
    validates more than its fields (validate(), validate_<field>, validators, its own to_internal_value)."""
    cls = type(serializer)
    if (
        cls.to_internal_value is not StrictInput.to_internal_value
        or cls.run_validation is not serializers.Serializer.run_validation
        or cls.validate is not serializers.Serializer.validate
        or serializer.validators
        or serializer.partial
    ):
        return None
    plan = []
    for field in serializer._writable_fields:
        if hasattr(serializer, f"validate_{field.field_name}"):
            return None
        plan.append((field.field_name, field, _quick_field(field)))
    return plan


def _quick_validated(plan, data: dict) -> dict | None:
    known = 0
    out = {}
    for name, field, check in plan:
        if name in data:
            known += 1
            value = NOT_QUICK if check is None else check(data[name])
            if value is NOT_QUICK:
                return None
            out[name] = value
            continue
        try:  # absent: the field's default, exactly as the serializer asks for it
            out[name] = field.run_validation(field.get_value(data))
        except SkipField:
            pass
        except (exceptions.ValidationError, DjangoValidationError):
            return None  # required: the serializer says so, with the other errors
    return out if known == len(data) else None  # an unknown member: StrictInput names it


_output_serializers = threading.local()
_output_plans: dict = {}


def represented(serializer_class, instance) -> dict:
    """`serializer_class(instance).data` without building a serializer for each answer (which deep-copies
    its declared fields), for output serializers that read no context: one bound instance per thread and
    class, and what its `to_representation` does field by field, with the plain fields' steps inlined
    (tests/test_validated.py compares the answers)."""
    serializers_here = _output_serializers.__dict__
    serializer = serializers_here.get(serializer_class)
    if serializer is None:
        serializer = serializers_here[serializer_class] = serializer_class()
    plan = _output_plans.get(serializer_class)
    if plan is None:
        plan = _output_plans[serializer_class] = _output_plan(serializer)
    if not plan:
        return serializer.to_representation(instance)
    out = {}
    for name, attrs, field, convert in plan:
        value = instance
        if attrs is not None:  # Field.get_attribute's walk, for an object without mappings or callables
            try:
                for attr in attrs:
                    if isinstance(value, Mapping):
                        raise LookupError
                    value = getattr(value, attr)
                if callable(value):
                    raise LookupError
            except Exception:
                attrs = None
        if attrs is None:
            try:
                value = field.get_attribute(instance)
            except SkipField:
                continue
            if isinstance(value, PKOnlyObject):
                value = value if value.pk is not None else None
        out[name] = None if value is None else convert(value)
    return out


def _output_plan(serializer) -> list:
    """(name, source attributes or None, field, converter) for each readable field; [] when the serializer
    turns objects its own way."""
    if type(serializer).to_representation is not serializers.Serializer.to_representation:
        return []
    plan = []
    for field in serializer._readable_fields:
        plain_lookup = type(field).get_attribute is serializers.Field.get_attribute
        attrs = list(field.source_attrs) if plain_lookup else None
        plan.append((field.field_name, attrs, field, _converter(field)))
    return plan


def _converter(field):
    """field.to_representation, with DRF's own steps written out for the plain field types."""
    kind = type(field)
    if kind is serializers.CharField:
        return str
    if kind is serializers.IntegerField:
        return int
    if kind is serializers.DictField and type(field.child) is _UnvalidatedField:
        return lambda value: {str(key): item for key, item in value.items()}
    if kind is serializers.ListField and type(field.child) is serializers.CharField:
        return lambda value: [None if item is None else str(item) for item in value]
    return field.to_representation


class StrictInput(serializers.Serializer):
    """An input serializer that names unknown fields instead of silently dropping them."""

    immutable_message = "is not a field of this request"

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [self.immutable_message] for name in unknown})
        return super().to_internal_value(data)
