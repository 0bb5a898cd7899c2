"""audit_checkpoint: sign a checkpoint for the log as it is now (the periodic task does the same)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import log, witness


class Command(BaseCommand):
    help = "Sign a checkpoint of the audit log now, if it grew since the last one."

    def handle(self, *args, **options):
        try:
            checkpoint = log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
        except (log.InconsistentLog, log.WrongSigningKey, witness.WitnessUnavailable) as exc:
            raise CommandError(f"refusing to sign: {exc}") from None
        if checkpoint is None:
            self.stdout.write("The log did not grow since the last checkpoint.")
        else:
            self.stdout.write(checkpoint.note)
