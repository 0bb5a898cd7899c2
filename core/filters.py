"""Filter parts shared by the API lists and the pages."""

import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time that exists in UTC: `9999-12-31T23:59:59-12:00` parses, but has no UTC form (year
    10000), and the database query would fail on it."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is not None:
            try:
                moment.astimezone(dt.UTC)
            except OverflowError:
                message = "Enter a time between the years 1 and 9999 (UTC)."
                raise ValidationError(message, code="invalid") from None
        return moment


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField
