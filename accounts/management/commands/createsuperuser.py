"""createsuperuser: the first administrator, created by accounts.services.person_create (`account.created`).

Replaces django.contrib.auth's command of the same name (accounts comes before it in INSTALLED_APPS), with
the same options: `--username`, `--email`, `--noinput` (the password from DJANGO_SUPERUSER_PASSWORD; without
it the account has no usable password until `changepassword` sets one). The event's actor is the system (the
server's command line).
"""

import getpass
import os

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from core.exceptions import DomainError
from core.source import Source


class Command(BaseCommand):
    help = "Create a superuser (a registry admin), recorded in the audit log."
    requires_migrations_checks = True

    def add_arguments(self, parser):
        parser.add_argument("--username", help="The superuser's sign-in name.")
        parser.add_argument("--email", default=None, help="The superuser's e-mail address.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Ask nothing: --username is required, the password comes from DJANGO_SUPERUSER_PASSWORD.",
        )
        parser.add_argument("--database", default="default", help="Ignored: accounts are in the default one.")

    def handle(self, *args, username=None, email=None, interactive=True, **options):
        username = username or os.environ.get("DJANGO_SUPERUSER_USERNAME")
        email = email if email is not None else os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if interactive:
            username = username or input("Username: ").strip()
            email = email or input("Email address: ").strip()
            if password is None:
                password = getpass.getpass("Password: ")
                if password != getpass.getpass("Password (again): "):
                    raise CommandError("The passwords do not match.")
        if not username:
            raise CommandError("You must use --username with --noinput.")
        try:
            services.person_create(
                actor=None,
                source=Source.cli(),
                username=username,
                email=email or "",
                password=password or None,
                is_superuser=True,
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        if options["verbosity"] >= 1:
            self.stdout.write("Superuser created successfully.")
