"""Forms of the access pages: shape only; the rules live in accounts.services."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import Group

from accounts.models import Scope, TrustProvider, User
from accounts.oidc import POLICY_SCOPES
from accounts.services import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS

# The tokens made on the access page belong to service accounts, and review is for people only.
SERVICE_ACCOUNT_SCOPES = [
    (value, label if label.lower() == value else f"{value}: {label}")
    for value, label in Scope.choices
    if value != Scope.REVIEW
]


class ServiceAccountForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Lowercase letters, digits, '-', '_' or '.', e.g. ci-fraud.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        error_messages={"required": "Enter a name for the service account."},
    )
    team = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="No team",
        error_messages={"invalid_choice": "Choose one of the teams in the list."},
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "sa_%s")  # two forms share a page: keep their ids apart
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class TokenForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=User.objects.filter(is_service_account=True).order_by("username"),
        to_field_name="username",
        empty_label=None,
        label="Service account",
    )
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. github-actions.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(choices=SERVICE_ACCOUNT_SCOPES, widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=MAX_TOKEN_DAYS, initial=DEFAULT_TOKEN_DAYS, label="Expires in (days)"
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "token_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class PersonalTokenForm(forms.Form):
    """A token for the signed-in person: review is offered here, and only here (see token_create)."""

    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. laptop-scripts.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(choices=[], widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=MAX_TOKEN_DAYS, initial=DEFAULT_TOKEN_DAYS, label="Expires in (days)"
    )

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("auto_id", "mine_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        # manage is for registry admins only; a service account never signs in, so never reaches this form.
        self.fields["scopes"].choices = [
            (value, label if label.lower() == value else f"{value}: {label}")
            for value, label in Scope.choices
            if value != Scope.MANAGE or user.is_registry_admin
        ]


class TeamMemberForm(forms.Form):
    user = forms.CharField(
        max_length=150,
        label="Username",
        help_text="A person or service account.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "member_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class AccountRolesForm(forms.Form):
    """An account's global role and flags: all of them are sent, and the service records what changed."""

    global_role = forms.ChoiceField(
        choices=[("none", "None"), ("admin", "Registry admin"), ("auditor", "Auditor")], label="Global role"
    )
    is_active = forms.BooleanField(required=False, label="Active", help_text="A disabled account cannot act.")
    can_create_assets = forms.BooleanField(required=False, label="May create assets")
    is_staff = forms.BooleanField(required=False, label="Staff", help_text="May open the Django admin.")
    is_superuser = forms.BooleanField(
        required=False, label="Superuser", help_text="Counts as a registry admin; only superusers change it."
    )

    def __init__(self, *args, superuser_editable: bool = True, **kwargs):
        kwargs.setdefault("auto_id", "roles_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        # A disabled field keeps its initial value whatever is posted: no change is asked for.
        self.fields["is_superuser"].disabled = not superuser_editable


class TrustPolicyForm(forms.Form):
    """A trust policy: conditions are typed one per line as claim=value."""

    name = forms.CharField(
        max_length=100, help_text="Lowercase letters, digits, '-', '_' or '.', e.g. fraud-main."
    )
    provider = forms.ChoiceField(choices=TrustProvider.choices)
    issuer = forms.CharField(
        max_length=300,
        required=False,
        help_text="The iss of the ID tokens, exactly (https://…). Empty: GitHub's or gitlab.com's.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    audience = forms.CharField(max_length=200, help_text="The aud the job requests, e.g. the registry's URL.")
    conditions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One claim=value a line. GitHub: repository (or repository_id), repository_owner_id, ref, "
        "environment, job_workflow_ref. GitLab: project_path, ref, ref_protected, environment.",
    )
    account = forms.ModelChoiceField(
        queryset=User.objects.filter(is_service_account=True).order_by("username"),
        to_field_name="username",
        empty_label=None,
        help_text="The service account the job acts as; its roles on assets still apply.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(value, label) for value, label in SERVICE_ACCOUNT_SCOPES if value in POLICY_SCOPES],
        widget=forms.CheckboxSelectMultiple,
    )
    token_lifetime_seconds = forms.IntegerField(
        min_value=60,
        max_value=3600,
        initial=900,
        help_text="At most an hour, never past the ID token's expiry.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_conditions(self) -> dict:
        conditions = {}
        for line in self.cleaned_data["conditions"].splitlines():
            if not line.strip():
                continue
            claim, sep, value = line.partition("=")
            if not sep or not claim.strip() or not value.strip():
                raise forms.ValidationError(f"{line.strip()!r} is not claim=value")
            conditions[claim.strip()] = value.strip()
        return conditions

    @staticmethod
    def conditions_text(conditions: dict) -> str:
        return "\n".join(f"{claim}={value}" for claim, value in conditions.items())
