"""Test settings: fast password hashing, in-memory cache, tasks run in-process."""

import os

from .safety import TEST_SECRET_KEY

os.environ.setdefault("DJANGO_SECRET_KEY", TEST_SECRET_KEY)
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("DJANGO_LOG_FORMAT", "text")

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUDIT_SIGNING_KEY_FILE = str(VAR_DIR / "test-audit-signing-key.pem")  # noqa: F405
AUDIT_SIGNING_KEY_AUTOCREATE = True
AUDIT_ALLOW_FLUSH = True
# Each test gets its own witness directory (tests/conftest.py): a fresh database must not meet an old witness.
AUDIT_WITNESS_DIR = None
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = None
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# Two suites running at once on one machine need their own test databases: REGISTRY_TEST_DB_SUFFIX.
_suffix = os.environ.get("REGISTRY_TEST_DB_SUFFIX", "")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: the live-server tests share it between threads, with WAL and a busy timeout.
    VAR_DIR.mkdir(exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-registry{_suffix}.sqlite3")}  # noqa: F405
elif _suffix:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{_suffix}"}  # noqa: F405
DEBUG = False
# The test client speaks plain HTTP; tests that need HTTPS behaviour turn these on with override_settings.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REGISTRY_BASE_URL = "https://registry.example.test"
# The tests' OIDC issuer (tests/oidc_issuer.py) serves plain HTTP on 127.0.0.1.
OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS = True
