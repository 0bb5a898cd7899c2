"""Filters for the audit log: the event list, the exports, and the auditor pages."""

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django_filters.fields import MultipleChoiceField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from audit.export import Filters
from audit.models import Action, AuditEvent
from core.exceptions import InvalidInput
from core.filters import IsoDateTimeFilter
from registry.models import Asset, AssetKind

SIGN_IN = "sign-in"
MAX_NAMED_ASSETS = 2500  # a part of a name matching more is refused: it would not narrow the log much
SIGN_IN_ACTIONS = (Action.LOGIN_SUCCEEDED, Action.LOGIN_FAILED, Action.LOGIN_LOCKED, Action.LOGOUT)


def action_groups() -> dict[str, tuple[str, ...]]:
    """Groups of actions one may exclude at once: sign-ins (the bulk of a busy log), then one group per
    prefix (`promotion` holds every `promotion.*`), so that an action added later joins its group."""
    groups: dict[str, list[str]] = {SIGN_IN: list(SIGN_IN_ACTIONS)}
    for action in Action.values:
        if action not in SIGN_IN_ACTIONS:
            groups.setdefault(action.split(".", 1)[0], []).append(action)
    return {name: tuple(actions) for name, actions in groups.items()}


def excluded_actions(values) -> tuple[str, ...]:
    """The actions named by a list of group names and action names, sorted, without repeats."""
    groups = action_groups()
    return tuple(sorted({action for value in values for action in groups.get(value, (value,))}))


class ExcludeField(MultipleChoiceField):
    """Group or action names, repeated (`exclude=sign-in&exclude=token`) or comma-separated. An empty value
    is dropped: `exclude=` alone says "exclude nothing" where a page would exclude sign-ins by default."""

    def to_python(self, value):
        return [part.strip() for item in super().to_python(value) for part in item.split(",") if part.strip()]


# Action names and group names, repeated or comma-separated: a string each in the schema.
@extend_schema_field(OpenApiTypes.STR)
class ExcludeFilter(django_filters.MultipleChoiceFilter):
    field_class = ExcludeField


class AuditFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            # An empty range would show nothing and say nothing: refuse it, naming both fields.
            shown = "%Y-%m-%d %H:%M:%S UTC"
            self.add_error(
                "until",
                f"Until ({until:{shown}}) must be later than Since ({since:{shown}}): no event can fall "
                "between them. Swap them or change one.",
            )
        name = (data.get("asset_name") or "").strip()
        self.asset_ids = None  # kept beside cleaned_data: the filter set filters by each of its keys
        if name and "asset_name" not in self.errors:
            self.asset_ids = self.assets_named(kind=data.get("asset_kind"), name=name)
        return data

    def assets_named(self, *, kind: str | None, name: str) -> list[int] | None:
        """The ids of the assets whose name holds `name` (of that kind, if given), read first, in one query.

        Given as a list, the ids let the database estimate how many events match and pick its plan: the
        events of a few assets by the (asset_id, seq) index, the events of many by walking seq backwards. A
        subquery on a name pattern is estimated at one row whatever it matches, and planned as the former.
        Asset names are lowercase (core.validators.NAME_PATTERN): lowering the text makes the match
        case-insensitive without UPPER() on every name.
        """
        assets = Asset.objects.filter(name__contains=name.lower())
        if kind:
            assets = assets.filter(kind=kind)
        ids = list(assets.order_by().values_list("pk", flat=True)[: MAX_NAMED_ASSETS + 1])
        if len(ids) > MAX_NAMED_ASSETS:
            more = "" if kind else " or choose a kind"
            self.add_error(
                "asset_name",
                f"“{name}” is in the names of more than {MAX_NAMED_ASSETS} assets: type more of it{more}.",
            )
            return None
        return ids


class AuditEventFilter(django_filters.FilterSet):
    since = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_repr")
    action = django_filters.CharFilter()
    exclude = ExcludeFilter(
        method="filter_exclude",
        choices=lambda: [(name, name) for name in [*action_groups(), *Action.values]],
        help_text=f"actions or groups of actions to leave out, e.g. {SIGN_IN} (login.*, logout) or token",
    )
    asset = django_filters.CharFilter(
        method="filter_asset", help_text="model/NAME, prompt/NAME or dataset/NAME: exactly that asset"
    )
    asset_kind = django_filters.ChoiceFilter(
        choices=AssetKind.choices, method="filter_nothing", help_text="events of assets of this kind"
    )
    asset_name = django_filters.CharFilter(
        method="filter_nothing", help_text="events of assets whose name contains this (any case)"
    )
    target = django_filters.CharFilter(method="filter_target", help_text="<kind>:<id>, e.g. registry.asset:3")

    class Meta:
        model = AuditEvent
        form = AuditFilterForm
        fields = ["since", "until", "actor", "action", "exclude", "asset", "asset_kind", "asset_name"]
        fields += ["target"]

    def filter_asset(self, queryset, name, value):
        return queryset.filter(asset_id=self.asset_id(value))

    def filter_target(self, queryset, name, value):
        kind, _, target_id = value.partition(":")
        return queryset.filter(Q(target_kind=kind) & Q(target_id=target_id))

    def filter_exclude(self, queryset, name, value):
        return queryset.exclude(action__in=excluded_actions(value))

    def filter_nothing(self, queryset, name, value):
        return queryset  # asset_kind and asset_name make one subquery together: filter_queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        assets = self.assets_matching()
        return queryset if assets is None else queryset.filter(asset_id__in=assets)

    def assets_matching(self) -> list[int] | QuerySet | None:
        """The assets whose events are asked for (None: no such filter): the ids the form found by name
        (AuditFilterForm.assets_named), or, for a kind alone, a subquery (the database knows how many assets
        each kind has)."""
        if self.form.asset_ids is not None:
            return self.form.asset_ids
        if kind := self.form.cleaned_data.get("asset_kind"):
            return Asset.objects.filter(kind=kind).values("pk")
        return None

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
        kind, name = data.get("asset_kind") or "", (data.get("asset_name") or "").strip()
        exclude = data.get("exclude") or []
        described = {"asset": asset} if asset else {}
        if kind or name:
            described |= {"asset_kind": kind or None, "asset_name": name or None}
        if exclude:
            described["exclude"] = list(exclude)
        return Filters(
            target=tuple(target.partition(":")[::2]) if target else None,
            since=data.get("since"),
            until=data.get("until"),
            actor=data.get("actor") or None,
            action=data.get("action") or None,
            asset_id=self.asset_id(asset) if asset else None,
            asset_in=self.assets_matching(),
            exclude_actions=excluded_actions(exclude),
            extra=described,
        )
