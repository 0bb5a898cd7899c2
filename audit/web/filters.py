"""Filters for the audit log: the event list, the exports, and the auditor pages."""

import django_filters
from django.db.models import Q

from audit.export import Filters
from audit.models import AuditEvent
from core.exceptions import InvalidInput
from core.filters import IsoDateTimeFilter
from registry.models import Asset


class AuditEventFilter(django_filters.FilterSet):
    since = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_repr")
    action = django_filters.CharFilter()
    asset = django_filters.CharFilter(
        method="filter_asset", help_text="model/NAME, prompt/NAME or dataset/NAME"
    )
    target = django_filters.CharFilter(method="filter_target", help_text="<kind>:<id>, e.g. registry.asset:3")

    class Meta:
        model = AuditEvent
        fields = ["since", "until", "actor", "action", "asset", "target"]

    def filter_asset(self, queryset, name, value):
        return queryset.filter(asset_id=self.asset_id(value))

    def filter_target(self, queryset, name, value):
        kind, _, target_id = value.partition(":")
        return queryset.filter(Q(target_kind=kind) & Q(target_id=target_id))

    @staticmethod
    def asset_id(value: str) -> int:
        kind, _, name = value.partition("/")
        asset_id = Asset.objects.filter(kind=kind, name=name).values_list("pk", flat=True).first()
        return asset_id if asset_id is not None else -1  # an unknown asset matches no event

    def export_filters(self) -> Filters:
        if not self.is_valid():
            field, messages = next(iter(self.errors.items()))
            raise InvalidInput.field(field, " ".join(messages))
        data = self.form.cleaned_data
        asset, target = data.get("asset"), data.get("target")
        return Filters(
            target=tuple(target.partition(":")[::2]) if target else None,
            since=data.get("since"),
            until=data.get("until"),
            actor=data.get("actor") or None,
            action=data.get("action") or None,
            asset_id=self.asset_id(asset) if asset else None,
        )
