"""Forms of the reviewer pages: the shape of what a reviewer sends, nothing more (the rules are services')."""

from django import forms

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
