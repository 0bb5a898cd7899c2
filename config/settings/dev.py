"""Laptop settings: DEBUG on, a fixed development secret, plain HTTP cookies."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")

from .base import *  # noqa: F403

AUDIT_SIGNING_KEY_AUTOCREATE = True  # a development key under var/, made on first use
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [  # noqa: F405
    "rest_framework.renderers.JSONRenderer",
    "rest_framework.renderers.BrowsableAPIRenderer",
]
