"""FilterSets shared by the API lists (and later the pages)."""

import django_filters
from django.db import connection
from django.db.models import Q

from core.filters import IsoDateTimeFilter
from registry.models import Asset, AssetVersion, Evaluation, RiskTier


def filter_tag(queryset, name, value):
    """JSON list membership: `contains` on PostgreSQL; a quoted-substring match on SQLite."""
    if connection.vendor == "postgresql":
        return queryset.filter(**{f"{name}__contains": [value]})
    return queryset.filter(**{f"{name}__icontains": f'"{value}"'})


class AssetFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", help_text="Search in name and description.")
    team = django_filters.CharFilter(field_name="team__name")
    risk_tier = django_filters.ChoiceFilter(choices=RiskTier.choices)
    tag = django_filters.CharFilter(field_name="tags", method=filter_tag)
    archived = django_filters.BooleanFilter(field_name="archived_at", lookup_expr="isnull", exclude=True)
    stage = django_filters.CharFilter(
        field_name="stage_pointers__stage__name",
        help_text="Only assets with a version in this stage.",
    )

    class Meta:
        model = Asset
        fields = ["q", "team", "risk_tier", "tag", "archived", "stage"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class VersionFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags", method=filter_tag)
    digest = django_filters.CharFilter()
    created_by = django_filters.CharFilter(field_name="created_by__username")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AssetVersion
        fields = ["tag", "digest", "created_by", "created_after", "created_before"]


class EvaluationFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()

    class Meta:
        model = Evaluation
        fields = ["name"]
