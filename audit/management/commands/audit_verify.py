"""audit_verify: recompute leaves, chain and Merkle roots against every signed and witnessed checkpoint.

Exits 1 naming the first bad seq and what is wrong (altered, missing, reordered, signature invalid).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from audit.verification import verify_log


class Command(BaseCommand):
    help = "Verify the whole audit log against its signed checkpoints."

    def add_arguments(self, parser):
        parser.add_argument("--key", help="the verifier key to trust (default: the configured signing key's)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--processes",
            type=int,
            help="processes a large log is checked by, in ranges (default: one per CPU; 1: this one alone)",
        )

    def handle(self, *args, key=None, json=False, processes=None, **options):
        result = verify_log(verifier=key, processes=processes)
        report = {
            "ok": result.ok,
            "events": result.events,
            "checkpoints": result.checkpoints,
            "first_bad_seq": result.first_bad_seq,
            "problem": result.problem,
            "witnessed": result.witnessed,
        }
        if json:
            self.stdout.write(_json(report))
        elif result.ok:
            self.stdout.write(
                f"ok: {result.events} events, {result.checkpoints} signed checkpoints verified, "
                f"{result.witnessed} witnessed checkpoints matched"
            )
        if not result.ok:
            raise CommandError(f"first bad seq {result.first_bad_seq}: {result.problem}", returncode=1)


def _json(report: dict) -> str:
    return json.dumps(report)
