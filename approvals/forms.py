"""Forms of the reviewer pages: the shape of what a reviewer sends, nothing more (the rules are services')."""

import json

from django import forms

from approvals.models import Status
from approvals.services import MAX_EXPIRY_HOURS, POLICY_FIELDS
from registry.models import AssetKind

TEXT_LIMIT = 5000  # as the API's CommentIn and ReasonIn


class ApproveForm(forms.Form):
    comment = forms.CharField(
        label="Comment (optional)",
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class RejectForm(forms.Form):
    comment = forms.CharField(
        label="Why do you reject it? (required)",
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say why you reject the request."},
    )
    # A rejection is final for the request: an explicit second step, so that a stray click does nothing.
    confirm = forms.BooleanField(
        label="Yes, reject this request: it is final, the requester must ask again",
        error_messages={"required": "Tick the box to confirm that you reject the request."},
    )


class CancelForm(forms.Form):
    """Withdraw a request: the box must be ticked, so that a stray click withdraws nothing."""

    reason = forms.CharField(
        label="Reason (optional)",
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    confirm = forms.BooleanField(
        label="Yes, withdraw this request (it cannot be reopened)",
        error_messages={"required": "Tick the box to confirm that you withdraw the request."},
    )


class PromotionFilterForm(forms.Form):
    """The filters of the promotions list; every field is optional, an invalid one is ignored."""

    show = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[
            ("", "Every promotion you may see"),
            ("waiting", "Waiting for my review"),
            ("mine", "My requests (mine, my teams' service accounts', on assets I manage)"),
        ],
    )
    status = forms.ChoiceField(label="Status", required=False)
    stage = forms.ChoiceField(label="Stage", required=False)
    kind = forms.ChoiceField(label="Kind", required=False)
    name = forms.CharField(label="Asset name", required=False, max_length=100)
    requested_by = forms.CharField(label="Requested by", required=False, max_length=150)

    def __init__(self, *args, stages, **kwargs):
        kwargs.setdefault("auto_id", "filter_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status"), *Status.choices]
        self.fields["stage"].choices = [("", "Any stage"), *((stage.name, stage.name) for stage in stages)]
        self.fields["kind"].choices = [("", "Any kind"), *AssetKind.choices]

    def filters(self) -> dict:
        """The valid, non-empty filters, as the API's query parameters (call after is_valid()); `show` is
        not one of them (see shown)."""
        return {key: value for key, value in self.cleaned_data.items() if value and key != "show"}

    def shown(self) -> str:
        """Which requests to list: "" (every one the reader may see), "waiting" or "mine" (call after
        is_valid())."""
        return self.cleaned_data.get("show", "")


GATES_HELP = (
    "A JSON list, one object per gate, e.g. "
    '[{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}, {"type": "model_card"}, '
    '{"type": "previous_stage", "stage": "staging"}]. Empty: no gates.'
)


class PolicyForm(forms.Form):
    """What promotion into a stage takes (shape only; approvals.services.policies checks the rules). The
    scope (asset, kind, stage) is chosen when the policy is made and cannot change afterwards."""

    kind = forms.ChoiceField(label="Kind", required=False)
    name = forms.CharField(
        label="Asset name",
        required=False,
        max_length=100,
        help_text="One asset of the kind above (you must manage it). Empty: every asset of the kind, or of "
        "every kind (registry admins only).",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    stage = forms.ChoiceField(label="Stage", error_messages={"required": "Choose a stage."})
    required_approvals = forms.IntegerField(
        label="Approvals needed",
        min_value=1,
        max_value=20,
        initial=1,
        error_messages={"required": "Say how many approvals are needed (1 to 20)."},
    )
    reviewer_teams = forms.MultipleChoiceField(
        label="Only reviewers from these teams",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: anyone who holds review on the asset.",
    )
    allow_author_approval = forms.BooleanField(
        label="The version's author may approve it", required=False, initial=False
    )
    gates = forms.CharField(
        label="Gates",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=GATES_HELP,
        initial="[]",
    )
    expiry_hours = forms.IntegerField(
        label="A request expires after (hours)",
        min_value=1,
        max_value=MAX_EXPIRY_HOURS,
        initial=7 * 24,
        error_messages={"required": f"Say after how many hours a request expires (1 to {MAX_EXPIRY_HOURS})."},
    )
    apply_on_approval = forms.BooleanField(
        label="Move the version into the stage as soon as it is approved", required=False, initial=True
    )

    SCOPE_FIELDS = ("kind", "name", "stage")

    def __init__(self, *args, stages, teams, editing: bool = False, **kwargs):
        kwargs.setdefault("auto_id", "policy_%s")
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "Every kind"), *AssetKind.choices]
        self.fields["stage"].choices = [
            ("", "Choose a stage"),
            *((stage.name, stage.name) for stage in stages),
        ]
        self.teams = {team.name: team for team in teams}
        self.fields["reviewer_teams"].choices = [(name, name) for name in self.teams]
        if editing:
            for name in self.SCOPE_FIELDS:
                del self.fields[name]

    def clean_gates(self):
        text = (self.cleaned_data.get("gates") or "").strip() or "[]"
        try:
            gates = json.loads(text)
        except ValueError:
            raise forms.ValidationError(
                "The gates are not valid JSON: write a list such as [] or [{…}]."
            ) from None
        if not isinstance(gates, list):
            raise forms.ValidationError("Write the gates as a list: [ … ].")
        return gates

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("name") and not cleaned.get("kind"):
            self.add_error("kind", "Choose the kind of the asset named below.")
        return cleaned

    def policy_fields(self) -> dict:
        """The fields the policy services take (call after is_valid())."""
        fields = {key: self.cleaned_data[key] for key in POLICY_FIELDS}
        fields["reviewer_teams"] = [self.teams[name] for name in fields["reviewer_teams"]]
        return fields


class PromotionRequestForm(forms.Form):
    """Ask for a version to go to a stage, as the API's POST /promotions (the service checks the rules)."""

    version = forms.TypedChoiceField(label="Version", coerce=int)
    stage = forms.ChoiceField(label="To stage")
    justification = forms.CharField(
        label="Justification (required)",
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say why this version should go to the stage."},
    )
    rollback = forms.BooleanField(
        label="This is a rollback",
        required=False,
        help_text="Tick it to put back a version older than the one in the stage now.",
    )

    def __init__(self, *args, versions: list[int], stages: list[str], **kwargs):
        kwargs.setdefault("auto_id", "promote_%s")
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(number, f"v{number}") for number in versions]
        self.fields["stage"].choices = [(name, name) for name in stages]
