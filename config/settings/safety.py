"""What the production settings refuse to start with.

A warning from `check --deploy` is read by nobody once the process runs; these refuse at import time, so the
web process, the workers and every management command stop with the message instead of serving unsafely.
"""

import os
from pathlib import Path

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

# The keys that dev.py and test.py publish in this repository: anyone can forge sessions signed with them.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
TEST_SECRET_KEY = "test-secret-key"
PUBLISHED_SECRET_KEYS = frozenset({DEV_SECRET_KEY, TEST_SECRET_KEY})

# The settings modules that import base.py and relax it on purpose (a laptop, the test suite). Every other
# module, base itself or a deployment's own module that imports it, is held to the rules below.
RELAXED_SETTINGS_MODULES = frozenset({"config.settings.dev", "config.settings.test"})


def is_relaxed() -> bool:
    return os.environ.get("DJANGO_SETTINGS_MODULE") in RELAXED_SETTINGS_MODULES


def secret_key_problem(key: str) -> str | None:
    """Why this secret key is unsafe (Django's check_secret_key rule, plus the published keys), or None."""
    if key in PUBLISHED_SECRET_KEYS:
        return "DJANGO_SECRET_KEY is a development or test key published with the source code"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return (
            f"DJANGO_SECRET_KEY starts with {SECRET_KEY_INSECURE_PREFIX!r} (a startproject development key)"
        )
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (
            f"DJANGO_SECRET_KEY is weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters and "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones"
        )
    return None


def refuse_unsafe_start(
    *,
    debug: bool,
    secret_key: str,
    signing_key_file: str,
    signing_key_autocreate: bool,
    witness_dir: str | None,
) -> None:
    """Raise ImproperlyConfigured naming every unsafe setting of a production process."""
    problems = []
    if debug:
        problems.append(
            "DJANGO_DEBUG is on: error pages would show settings, SQL and stack traces to any client "
            "(use config.settings.dev on a laptop)"
        )
    if (problem := secret_key_problem(secret_key)) is not None:
        problems.append(
            f"{problem}; generate one with python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    if not signing_key_autocreate and not os.access(Path(signing_key_file), os.R_OK):
        problems.append(
            f"the audit signing key AUDIT_SIGNING_KEY_FILE={signing_key_file} does not exist or cannot be "
            "read, so no checkpoint could be signed; create it once with "
            "AUDIT_SIGNING_KEY_AUTOCREATE=true python manage.py audit_keygen (or "
            "openssl genpkey -algorithm ed25519 -out FILE) and give the verifier key to your auditors"
        )
    if not witness_dir:
        problems.append(
            "AUDIT_WITNESS_DIR is not set: signed checkpoints would stay in the database only, so a restore "
            "from an older backup could fork the audit log unnoticed; name a directory on other storage "
            "than the database"
        )
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with unsafe production settings:\n- " + "\n- ".join(problems)
        )
