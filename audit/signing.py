"""The log's Ed25519 signing key, read from the file named by AUDIT_SIGNING_KEY_FILE."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit import notes


def generate_key_file(path: Path) -> None:
    """Write a new PKCS#8 PEM Ed25519 key, readable by its owner only."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # A directory made here is its owner's only: nobody else can swap the key file.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


@lru_cache(maxsize=4)
def _load(path: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} does not hold an Ed25519 private key")
    return key


def signing_key() -> Ed25519PrivateKey:
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not path.exists():
        if not settings.AUDIT_SIGNING_KEY_AUTOCREATE:
            raise ImproperlyConfigured(
                f"The audit signing key {path} does not exist: create it with manage.py audit_keygen "
                "and give its verifier key (manage.py audit_keygen --show) to your auditors."
            )
        generate_key_file(path)
    return _load(str(path))


def verifier_key() -> str:
    return notes.verifier_key(settings.AUDIT_LOG_ORIGIN, signing_key().public_key())
