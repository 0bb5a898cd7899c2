"""changepassword USERNAME: set a person's password on the server, as the system actor, with an audit event.

Replaces django.contrib.auth's command of the same name (accounts comes before it in INSTALLED_APPS): the
password goes through accounts.services.user_set_password, so the change is an `account.password_changed`
event from the command line. This is how a forgotten password is replaced; nobody sets another person's
password in the app.
"""

from django.contrib.auth.management.commands import changepassword
from django.core.management.base import CommandError

from accounts import services
from accounts.models import User
from core.exceptions import DomainError
from core.source import Source

MAX_TRIES = 3


class Command(changepassword.Command):
    help = "Set a person's password (recorded in the audit log as a change made on the server)."

    def handle(self, *args, **options):
        username = options["username"] or changepassword.getpass.getuser()
        user = User.objects.using(options["database"]).filter(username=username).first()
        if user is None:
            raise CommandError(f"user '{username}' does not exist")
        self.stdout.write(f"Changing password for user '{user}'")
        for _ in range(MAX_TRIES):
            password = self._get_pass()
            if password != self._get_pass("Password (again): "):
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                services.user_set_password(actor=None, source=Source.cli(), user=user, password=password)
            except DomainError as exc:
                if exc.type != "weak-password":
                    raise CommandError(exc.detail) from None
                self.stderr.write(exc.detail)
                continue
            return f"Password changed successfully for user '{user}'"
        raise CommandError(f"Aborting password change for user '{user}' after {MAX_TRIES} attempts")
