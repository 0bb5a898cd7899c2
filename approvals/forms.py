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
    reason = forms.CharField(
        label="Reason (optional)",
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
