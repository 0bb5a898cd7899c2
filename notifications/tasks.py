"""Sending the e-mail outbox, and the periodic warning before promotion requests expire.

An e-mail is written to the outbox (EmailNotification) in the transaction of the change and sent afterwards,
with Django's send_mail: by the Celery task send_email, enqueued when that transaction commits, or, without a
broker (make run), right after the commit in the same process. One that fails is tried again with backoff
(approvals' outbox schedule) until it is sent or runs out of attempts; sweep_emails (periodic) sends due
e-mails whose task was lost. A mail server that fails never fails the change: the row stays due.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from approvals.tasks import COUNTDOWN_LIMIT_SECONDS, MAX_ATTEMPTS, retry_delay

from .models import EmailNotification

logger = logging.getLogger(__name__)


def enqueue_after_commit(ids: list[int]) -> None:
    """Have these e-mails sent once the current transaction commits (nothing on rollback)."""
    if ids:
        transaction.on_commit(lambda: enqueue(ids), robust=True)


def enqueue(ids: list[int], *, countdown: float = 0) -> None:
    """Send through the broker; without one, now, in this process (after the commit: the change is done).
    A broker or a mail server that fails only delays the e-mails: they stay due, and the sweep finds them."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if not countdown:
            for email_id in ids:
                _send_quietly(email_id)
        return
    for email_id in ids:
        try:
            send_email.apply_async((email_id,), countdown=countdown)
        except Exception as exc:  # the change is committed; the outbox row is the record of what is owed
            logger.warning("e-mail %s not enqueued (the sweep will): %s", email_id, exc)


def _send_quietly(email_id: int) -> None:
    try:
        deliver_email(email_id)
    except Exception:  # whatever happens, the request that caused it has already succeeded
        logger.exception("e-mail %s not sent", email_id)


# While an e-mail is being sent its row is leased: due again only after this, should the worker die mid-send.
LEASE_SECONDS = 300


def deliver_email(email_id: int) -> str | None:
    """Send one e-mail if it is pending and due; its status afterwards, or None when it was not attempted
    (not due, already sent, or being sent by another worker).

    The row is claimed in a short transaction (its next attempt moved past the lease) and the attempt recorded
    in another: no lock is held while the mail server takes its time.
    """
    with transaction.atomic():
        email = (
            EmailNotification.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, status=EmailNotification.State.PENDING)
            .first()
        )
        now = timezone.now()
        if email is None or email.next_attempt_at > now:
            return None
        email.attempts += 1
        email.next_attempt_at = now + dt.timedelta(seconds=LEASE_SECONDS)
        email.save(update_fields=["attempts", "next_attempt_at"])
    error = ""
    try:
        send_mail(
            email.subject, email.body, settings.DEFAULT_FROM_EMAIL, [email.address], fail_silently=False
        )
    except Exception as exc:  # SMTP errors, refused connections, timeouts: all worth another try
        error = f"{type(exc).__name__}: {exc}"[:2000]
    now = timezone.now()
    if not error:
        email.status, email.sent_at, email.last_error = EmailNotification.State.SENT, now, ""
    elif email.attempts >= MAX_ATTEMPTS:
        email.status, email.last_error = EmailNotification.State.FAILED, error
        logger.warning("e-mail %s failed for good after %s attempts: %s", email.pk, email.attempts, error)
    else:
        email.next_attempt_at, email.last_error = now + retry_delay(email.attempts), error
        logger.warning("e-mail %s not sent (attempt %s): %s", email.pk, email.attempts, error)
    EmailNotification.objects.filter(pk=email.pk).update(
        status=email.status,
        sent_at=email.sent_at,
        last_error=email.last_error,
        next_attempt_at=email.next_attempt_at,
    )
    wait = (email.next_attempt_at - now).total_seconds()
    if email.status == EmailNotification.State.PENDING and wait <= COUNTDOWN_LIMIT_SECONDS:
        enqueue([email.pk], countdown=max(wait, 0))
    return email.status


@shared_task
def send_email(email_id: int) -> str | None:
    """Send one e-mail from the outbox when it is due (one already sent, or not due yet, is left alone)."""
    return deliver_email(email_id)


@shared_task
def sweep_emails(limit: int = 1000) -> int:
    """Send every due e-mail (periodic): a task lost by the broker or a worker only delays it."""
    due = EmailNotification.objects.filter(
        status=EmailNotification.State.PENDING, next_attempt_at__lte=timezone.now()
    )
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if settings.CELERY_TASK_ALWAYS_EAGER:
        for email_id in ids:
            _send_quietly(email_id)
    else:
        enqueue(ids)
    return len(ids)


@shared_task
def warn_expiring_promotions() -> int:
    """Write the e-mails for open requests about to expire (periodic); they are sent after each commit."""
    from notifications.services import promotions_warn_expiring  # services import this module

    return promotions_warn_expiring()
