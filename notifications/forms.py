from django import forms

from notifications.models import Kind


class NotificationSettingsForm(forms.Form):
    """One checkbox per kind of e-mail (unticked: not sent)."""

    review_requested = forms.BooleanField(required=False, label=Kind.REVIEW_REQUESTED.label)
    decided = forms.BooleanField(required=False, label=Kind.DECIDED.label)
    expiring = forms.BooleanField(required=False, label=Kind.EXPIRING.label)
    webhook_failing = forms.BooleanField(required=False, label=Kind.WEBHOOK_FAILING.label)
