"""The notification settings page: the signed-in person turns each kind of e-mail on or off."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.web import report, web_source
from notifications import selectors, services
from notifications.forms import NotificationSettingsForm

HINTS = {
    "review_requested": "When a promotion you may review is requested.",
    "decided": "When a promotion you requested, or one on an asset you manage, is approved and waits to be "
    "applied, applied, rejected, cancelled, failed or expired.",
    "expiring": "Before an open promotion you requested, manage or may review expires (a day before, "
    "unless the registry is set otherwise).",
    "webhook_failing": "When deliveries to a webhook subscription you created, or one on an asset you "
    "manage, keep failing.",
}


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    current = selectors.settings_for(request.user)
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST)
        if form.is_valid():
            report(
                request,
                lambda: services.notification_settings_update(
                    actor=request.user, source=web_source(request), choices=form.cleaned_data
                ),
                "Your notification settings are saved.",
            )
            return redirect("notifications:settings")
    else:
        form = NotificationSettingsForm(
            initial={name: getattr(current, name) for name in services.SETTINGS_FIELDS}
        )
    context = {
        "nav": "notifications",
        "form": form,
        "fields": [(form[name], HINTS[name]) for name in services.SETTINGS_FIELDS],
        "address": request.user.email,
    }
    return render(request, "notifications/settings.html", context)
