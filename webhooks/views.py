"""Server-rendered webhook pages: the subscriptions you may see, a new one (its secret shown once), one
with its deliveries log and a redeliver button, edit, delete.

Every change goes through webhooks.services with a web Source, so it is checked and audited there. A new
subscription's secret is shown once, on the page the create form redirects to: the session carries only the
subscription's id for that one showing, never the secret.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import DomainError, InvalidInput, NotFound
from core.web import page_errors, paginate, report, web_source
from registry import selectors as registry_selectors
from registry.models import AssetKind
from webhooks import selectors, services
from webhooks.forms import WebhookEditForm, WebhookForm

SHOW_SECRET = "webhook_secret_once"
DELIVERIES_PER_PAGE = 20


def _asset(user, ref: str):
    """The asset named "kind/name" (None when empty); InvalidInput naming asset otherwise."""
    ref = ref.strip()
    if not ref:
        return None
    kind, _, name = ref.partition("/")
    if kind not in AssetKind.values or not name:
        raise InvalidInput.field("asset", f"must be kind/name with kind one of {', '.join(AssetKind.values)}")
    try:
        return registry_selectors.asset_get_for_user(user=user, kind=kind, name=name)
    except NotFound:
        raise InvalidInput.field("asset", f"no asset {ref} that you can see") from None


def _refused(form, exc: DomainError) -> None:
    """A service's refusal on the form: on the field it names, or for the whole form."""
    fields = [error for error in exc.errors if error.field in form.fields]
    for error in fields:
        form.add_error(error.field, error.message)
    if not fields:
        form.add_error(None, exc.detail)


@login_required
@require_http_methods(["GET"])
def webhook_list(request):
    subscriptions = selectors.subscription_list_for_user(user=request.user)
    context = {"nav": "webhooks", "pager": paginate(request, subscriptions, 50)}
    return render(request, "webhooks/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_create(request):
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subscription = services.webhook_create(
                actor=request.user,
                source=web_source(request),
                url=data["url"],
                events=data["events"],
                asset=_asset(request.user, data["asset"]),
                description=data["description"],
            )
        except DomainError as exc:
            _refused(form, exc)
        else:
            request.session[SHOW_SECRET] = subscription.pk
            return redirect("webhooks:detail", pk=subscription.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "webhooks/form.html", {"nav": "webhooks", "form": form, "new": True}, status=status
    )


@login_required
@require_http_methods(["GET"])
@page_errors
def webhook_detail(request, pk: int):
    subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
    show_secret = request.session.get(SHOW_SECRET) == subscription.pk
    if show_secret:
        del request.session[SHOW_SECRET]
    context = {
        "nav": "webhooks",
        "subscription": subscription,
        "secret": subscription.secret if show_secret else "",
        "pager": paginate(request, selectors.delivery_list(subscription=subscription), DELIVERIES_PER_PAGE),
    }
    response = render(request, "webhooks/detail.html", context)
    if show_secret:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def webhook_edit(request, pk: int):
    subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
    initial = {
        "url": subscription.url,
        "asset": subscription.asset_ref or "",
        "events": subscription.events,
        "description": subscription.description,
        "active": subscription.active,
    }
    form = WebhookEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            changes = {key: data[key] for key in ("url", "events", "description", "active")}
            if data["asset"].strip() != (subscription.asset_ref or ""):
                changes["asset"] = _asset(request.user, data["asset"])
            services.webhook_update(
                actor=request.user, source=web_source(request), subscription=subscription, **changes
            )
        except DomainError as exc:
            _refused(form, exc)
        else:
            messages.success(request, "Saved the webhook.")
            return redirect("webhooks:detail", pk=subscription.pk)
    status = 400 if request.method == "POST" else 200
    context = {"nav": "webhooks", "form": form, "subscription": subscription, "new": False}
    return render(request, "webhooks/form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def webhook_delete(request, pk: int):
    subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
    if request.method == "POST":
        try:
            services.webhook_delete(actor=request.user, source=web_source(request), subscription=subscription)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return redirect("webhooks:detail", pk=pk)
        messages.success(request, f"Deleted the webhook to {subscription.url}.")
        return redirect("webhooks:list")
    return render(request, "webhooks/delete.html", {"nav": "webhooks", "subscription": subscription})


@login_required
@require_POST
@page_errors
def delivery_redeliver(request, pk: int, delivery: int):
    subscription = selectors.subscription_get_for_user(user=request.user, pk=pk)
    report(
        request,
        lambda: services.delivery_redeliver(
            actor=request.user, source=web_source(request), subscription=subscription, delivery_id=delivery
        ),
        lambda message: f"Delivery {message.webhook_id} will be sent again now.",
    )
    return redirect("webhooks:detail", pk=pk)
