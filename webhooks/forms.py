"""Forms of the webhook pages: shape only; the rules live in webhooks.services."""

from __future__ import annotations

from django import forms

from audit.models import Action
from webhooks.services import EVERY_EVENT

EVENT_CHOICES = [(EVERY_EVENT, "* (every event of the asset or assets)")] + [
    (value, value) for value in Action.values
]


class WebhookForm(forms.Form):
    url = forms.CharField(
        max_length=1000,
        label="URL",
        help_text="Where the registry POSTs each event, signed (https://… ; public addresses only).",
        widget=forms.URLInput(attrs={"autocomplete": "off"}),
    )
    asset = forms.CharField(
        max_length=120,
        required=False,
        help_text="The asset as kind/name, e.g. model/fraud. Empty: every asset (registry admins only).",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    description = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class WebhookEditForm(WebhookForm):
    active = forms.BooleanField(
        required=False,
        help_text="Unticked: no new events are queued. Ticked on a failing webhook: active again.",
    )
