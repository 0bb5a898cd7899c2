"""Periodic signing of audit checkpoints."""

from celery import shared_task
from django.conf import settings


@shared_task
def make_checkpoint() -> int | None:
    from audit import log

    checkpoint = log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    return checkpoint.tree_size if checkpoint else None
