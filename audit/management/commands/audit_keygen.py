"""audit_keygen [--show]: create the checkpoint signing key if missing; print its verifier key."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from audit import signing


class Command(BaseCommand):
    help = "Create the audit log's Ed25519 signing key (if missing) and print the verifier key for auditors."

    def add_arguments(self, parser):
        parser.add_argument("--show", action="store_true", help="only print the verifier key")

    def handle(self, *args, show=False, **options):
        path = Path(settings.AUDIT_SIGNING_KEY_FILE)
        if not show and not path.exists():
            signing.generate_key_file(path)
            self.stderr.write(f"Created {path} (keep it secret, and back it up).")
        self.stdout.write(signing.verifier_key())
