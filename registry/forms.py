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


# The owner's actions on the asset and version pages: the shape of what is sent; the services decide the rest.

TEXT_LIMIT = 5000


class AssetEditForm(forms.Form):
    """The asset's editable fields, as the API's PATCH takes them (registry.services.ASSET_EDITABLE)."""

    description = forms.CharField(
        label="Description (Markdown)",
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    team = forms.ChoiceField(label="Owning team", required=False)
    risk_tier = forms.ChoiceField(label="Risk tier", choices=RiskTier.choices)
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=1000,
        help_text="Separated by commas, e.g. payments, pii.",
    )

    def __init__(self, *args, teams: list[str], **kwargs):
        kwargs.setdefault("auto_id", "edit_%s")
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "No team"), *((team, team) for team in teams)]

    @classmethod
    def for_asset(cls, asset, *, teams: list[str]) -> AssetEditForm:
        initial = {
            "description": asset.description,
            "team": asset.team.name if asset.team else "",
            "risk_tier": asset.risk_tier,
            "tags": ", ".join(asset.tags or []),
        }
        return cls(initial=initial, teams=teams)

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


class ArchiveForm(forms.Form):
    reason = forms.CharField(
        label="Why is it archived? (optional, recorded in the audit log)",
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class StageSetForm(forms.Form):
    """Put a version in a stage directly: only unprotected stages are offered (protected ones need a
    promotion)."""

    stage = forms.ChoiceField(label="Stage")
    reason = forms.CharField(label="Reason (optional)", required=False, max_length=TEXT_LIMIT)

    def __init__(self, *args, stages: list[str], **kwargs):
        kwargs.setdefault("auto_id", "stage_%s")
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [(name, name) for name in stages]
