"""create_token ACCOUNT [--scopes read write promote] [--expires-days N] [--name NAME].

Prints the token, and nothing else, on stdout, so that scripts can capture it. It is shown only once.
A person's token with the review scope is refused: only that person makes it, signed in (Your tokens).
"""

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import Scope, User
from core.exceptions import DomainError
from core.source import Source


class Command(BaseCommand):
    help = "Create an API token for an account and print it once."

    def add_arguments(self, parser):
        parser.add_argument("account")
        parser.add_argument("--scopes", nargs="+", default=[Scope.READ, Scope.WRITE], choices=Scope.values)
        parser.add_argument("--expires-days", type=int, default=services.DEFAULT_TOKEN_DAYS)
        parser.add_argument("--name", default="cli")

    def handle(self, *args, account, scopes, expires_days, name, **options):
        user = User.objects.filter(username=account).first()
        if user is None:
            raise CommandError(f"No account named {account!r}.")
        try:
            record, token = services.token_create(
                actor=None,
                source=Source.cli(),
                account=user,
                name=name,
                scopes=scopes,
                expires_in_days=expires_days,
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(token)
        self.stderr.write(f"Token {record} for {account}, expires {record.expires_at:%Y-%m-%d}.")
