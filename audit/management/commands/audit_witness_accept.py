"""audit_witness_accept --size N --reason TEXT: accept the database's log after it forked from the witness.

After a restore from an older backup the checkpointer refuses to sign and names the witnessed checkpoint the
log conflicts with. This command, run by an operator who has decided that the restored log is the one to keep,
records that decision as an audit event (who ran it, why, every witnessed checkpoint it supersedes) and as a
fork record in the witness, which keeps both histories; then it signs a checkpoint that covers the decision.
"""

import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import log, witness
from core.exceptions import DomainError
from core.source import Source


class Command(BaseCommand):
    help = "Accept the database's audit log as a fork of the witnessed checkpoints it no longer matches."

    def add_arguments(self, parser):
        parser.add_argument(
            "--size", type=int, required=True, help="the size of the witnessed checkpoint the refusal named"
        )
        parser.add_argument("--reason", required=True, help="why (e.g. which backup was restored, and when)")

    def handle(self, *args, size, reason, **options):
        try:
            event = log.witness_fork_accept(
                actor=None, source=Source.cli(), size=size, reason=reason, operator=_operator()
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        except witness.WitnessUnavailable as exc:
            raise CommandError(f"nothing was accepted: {exc}") from None
        superseded = ", ".join(str(item["size"]) for item in event.changes["superseded"])
        self.stdout.write(f"Fork accepted as audit event {event.seq}; superseded sizes: {superseded}")
        try:
            checkpoint = log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
        except (log.InconsistentLog, log.WrongSigningKey, witness.WitnessUnavailable) as exc:
            raise CommandError(f"accepted, but refusing to sign: {exc}") from None
        if checkpoint is not None:
            self.stdout.write(checkpoint.note)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
