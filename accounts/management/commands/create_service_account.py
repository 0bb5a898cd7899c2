"""create_service_account NAME [--team T]: an account for CI (no password sign-in, never a reviewer)."""

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from core.exceptions import DomainError
from core.source import Source


class Command(BaseCommand):
    help = "Create a service account for CI, optionally in a team."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--team", help="Team (group) the account joins; created if missing.")

    def handle(self, *args, name, team=None, **options):
        group = Group.objects.get_or_create(name=team)[0] if team else None
        try:
            services.service_account_create(actor=None, source=Source.cli(), name=name, team=group)
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        self.stderr.write(f"Created service account {name}" + (f" in team {team}" if team else ""))
