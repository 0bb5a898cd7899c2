"""The text of each e-mail: plain text, naming the asset, version, stage, requester and status, with the
full address of the page to act on (settings.REGISTRY_BASE_URL)."""

from __future__ import annotations

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from approvals.models import PromotionRequest

# What happened to a request, for the subject and the first line: (subject verb, sentence).
OUTCOMES = {
    "approved": ("approved, waiting to be applied", "was approved and waits for someone to apply it"),
    "applied": ("applied", "was applied"),
    "rejected": ("rejected", "was rejected"),
    "failed": ("failed", "could not be applied"),
    "expired": ("expired", "expired before it was decided"),
    "cancelled": ("cancelled", "was cancelled"),
}


def absolute(path: str) -> str:
    return settings.REGISTRY_BASE_URL.rstrip("/") + path


def review_url(promotion: PromotionRequest) -> str:
    return absolute(reverse("approvals:promotion", args=[promotion.pk]))


def settings_url() -> str:
    return absolute(reverse("notifications:settings"))


def _requester(promotion: PromotionRequest) -> str:
    account = promotion.requested_by
    return f"{account.username} (service account)" if account.is_service_account else account.username


def _facts(promotion: PromotionRequest, status: str) -> list[str]:
    version = f"v{promotion.version.number}"
    if promotion.base_version_id:
        version += f" (replaces v{promotion.base_version.number})"
    if promotion.rollback:
        version += ", a rollback"
    return [
        f"Asset:         {promotion.asset}",
        f"Version:       {version}",
        f"Stage:         {promotion.stage.name}",
        f"Requested by:  {_requester(promotion)}",
        f"Justification: {promotion.justification}",
        f"Status:        {status}",
    ]


def _footer(why: str) -> list[str]:
    return [
        "",
        "--",
        f"You get this e-mail because {why}.",
        f"Choose which e-mails you get: {settings_url()}",
    ]


def review_requested(promotion: PromotionRequest) -> tuple[str, str]:
    subject = f"Review requested: {promotion.asset} v{promotion.version.number} to {promotion.stage.name}"
    lines = [
        f"Promotion #{promotion.pk} needs your review.",
        "",
        *_facts(promotion, "pending"),
        f"Expires:       {promotion.expires_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Review it: {review_url(promotion)}",
        *_footer(f"you may review promotions of {promotion.asset}"),
    ]
    return subject, "\n".join(lines)


def decided(promotion: PromotionRequest, status: str, reason: str, why: str) -> tuple[str, str]:
    short, sentence = OUTCOMES[status]
    subject = f"Promotion #{promotion.pk} {short}: {promotion.asset} v{promotion.version.number}"
    lines = [f"Promotion #{promotion.pk} of {promotion.asset} {sentence}.", "", *_facts(promotion, status)]
    if reason:
        lines.append(f"Reason:        {reason}")
    lines += ["", f"See it: {review_url(promotion)}", *_footer(why)]
    return subject, "\n".join(lines)


def expiring(promotion: PromotionRequest, why: str) -> tuple[str, str]:
    subject = f"About to expire: promotion #{promotion.pk} of {promotion.asset} v{promotion.version.number}"
    lines = [
        f"Promotion #{promotion.pk} expires at {promotion.expires_at:%Y-%m-%d %H:%M} UTC unless decided.",
        "",
        *_facts(promotion, promotion.status),
        "",
        f"See it: {review_url(promotion)}",
        *_footer(why),
    ]
    return subject, "\n".join(lines)


def subscription_url(subscription_id: str) -> str:
    """The subscription's page (the webhooks app's, named by URL only: notifications does not import it)."""
    try:
        return absolute(reverse("webhooks:detail", args=[int(subscription_id)]))
    except (NoReverseMatch, ValueError):
        return ""


def webhook_failing(
    *, url: str, asset: str, subscription: str, subscription_id: str, error: str, why: str
) -> tuple[str, str]:
    subject = f"Webhook failing: {url}"[:200]
    lines = [f"Deliveries to {subscription} keep failing.", "", f"URL:           {url}"]
    if asset:
        lines.append(f"Asset:         {asset}")
    if error:
        lines.append(f"Last error:    {error}")
    lines += ["", "Check the receiver, or change or remove the subscription."]
    if subscription_url(subscription_id):
        lines.append(f"See it: {subscription_url(subscription_id)}")
    lines += _footer(why)
    return subject, "\n".join(lines)
