"""FilterSet for promotion lists (the API, and the reviewer pages)."""

import django_filters

from approvals.models import PromotionRequest, Status
from registry.models import AssetKind


class PromotionFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    kind = django_filters.ChoiceFilter(field_name="asset__kind", choices=AssetKind.choices)
    name = django_filters.CharFilter(field_name="asset__name")
    stage = django_filters.CharFilter(field_name="stage__name")
    requested_by = django_filters.CharFilter(field_name="requested_by__username")

    class Meta:
        model = PromotionRequest
        fields = ["status", "kind", "name", "stage", "requested_by"]
