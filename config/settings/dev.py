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
