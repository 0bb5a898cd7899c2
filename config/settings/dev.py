"""Laptop settings: DEBUG on, a fixed development secret, plain HTTP (cookies, no redirect, no HSTS)."""

import os

from .safety import DEV_SECRET_KEY

os.environ.setdefault("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("DJANGO_LOG_FORMAT", "text")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_HSTS_SECONDS", "0")

from .base import *  # noqa: F403

AUDIT_SIGNING_KEY_AUTOCREATE = True  # a development key under var/, made on first use
AUDIT_WITNESS_DIR = AUDIT_WITNESS_DIR or str(VAR_DIR / "witness")  # noqa: F405 - delete it with the database
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [  # noqa: F405
    "rest_framework.renderers.JSONRenderer",
    "rest_framework.renderers.BrowsableAPIRenderer",
]
# E-mails are printed on the console unless an SMTP server is configured (EMAIL_HOST).
if not os.environ.get("EMAIL_HOST") and not os.environ.get("DJANGO_EMAIL_BACKEND"):
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
REGISTRY_BASE_URL = os.environ.get("REGISTRY_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
