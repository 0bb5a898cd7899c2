"""Forms of the registry pages: they validate shape only (query strings, and the grant form of the access
pages), nothing else."""

from __future__ import annotations

from django import forms

from registry.models import AssetKind, RiskTier
from registry.permissions import Role


class AssetSearchForm(forms.Form):
    """Search and filters of the asset list; every field is optional, an invalid one is ignored."""

    q = forms.CharField(label="Search name or description", required=False, max_length=200)
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *AssetKind.choices])
    team = forms.ChoiceField(label="Team", required=False)
    stage = forms.ChoiceField(label="Has a version in", required=False)
    risk_tier = forms.ChoiceField(
        label="Risk tier", required=False, choices=[("", "Any risk tier"), *RiskTier.choices]
    )

    def __init__(self, *args, stages, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["type"] = "search"
        self.fields["team"].choices = [("", "Any team"), *((team.name, team.name) for team in teams)]
        self.fields["stage"].choices = [("", "Any stage"), *((stage.name, stage.name) for stage in stages)]

    def filters(self) -> dict:
        """The valid, non-empty filters (call after is_valid())."""
        return {key: value for key, value in self.cleaned_data.items() if value}


class CompareForm(forms.Form):
    """Two version numbers of one asset: a is the base, b is compared against it."""

    a = forms.IntegerField(label="Base version", min_value=1)
    b = forms.IntegerField(label="Compared version", min_value=1)

    def __init__(self, *args, latest: int, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("a", "b"):
            self.fields[name].widget.attrs["max"] = max(latest, 1)
            self.fields[name].validators.append(_no_later_than(latest))


def _no_later_than(latest: int):
    def check(value: int) -> None:
        if value > latest:
            raise forms.ValidationError(f"There is no version {value}; the latest is {latest}.")

    return check


class GrantForm(forms.Form):
    """Who gets (or loses) which role; labels and messages in plain words, shown next to each field."""

    principal_type = forms.ChoiceField(
        choices=[("user", "A person or service account"), ("team", "A team")],
        label="Grant to",
        error_messages={
            "required": "Choose a person or a team.",
            "invalid_choice": "Choose a person or a team.",
        },
    )
    principal = forms.CharField(
        max_length=150,
        label="Username or team name",
        help_text="The name they sign in with, a service account's name, or a team's name.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        error_messages={"required": "Enter a username or a team name."},
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        error_messages={
            "required": "Choose a role.",
            "invalid_choice": "Choose one of the roles in the list.",
        },
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "grant_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
