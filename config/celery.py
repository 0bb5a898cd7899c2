"""Celery application: configured from Django settings (CELERY_* names)."""

import os

from celery import Celery

# Production-safe default, as for WSGI; manage.py chooses the development settings itself.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
