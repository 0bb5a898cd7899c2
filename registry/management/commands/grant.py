"""grant PRINCIPAL ROLE ASSET [--revoke]: PRINCIPAL is a user, team or service account name;
ASSET is model/NAME, prompt/NAME or dataset/NAME."""

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from core.exceptions import DomainError
from core.source import Source
from registry import services
from registry.models import Asset, AssetKind
from registry.permissions import Role


class Command(BaseCommand):
    help = "Grant (or with --revoke, take away) a role on an asset."

    def add_arguments(self, parser):
        parser.add_argument("principal", help="user, team or service account name")
        parser.add_argument("role", choices=Role.values)
        parser.add_argument("asset", help="model/NAME, prompt/NAME or dataset/NAME")
        parser.add_argument("--revoke", action="store_true")

    def handle(self, *args, principal, role, asset, revoke, **options):
        kind, _, name = asset.partition("/")
        if kind not in AssetKind.values or not name:
            raise CommandError("ASSET must be model/NAME, prompt/NAME or dataset/NAME.")
        target = Asset.objects.filter(kind=kind, name=name).first()
        if target is None:
            raise CommandError(f"No asset {asset}.")
        user = User.objects.filter(username=principal).first()
        team = Group.objects.filter(name=principal).first()
        if user and team:
            raise CommandError(f"{principal!r} names both a user and a team; rename one of them.")
        holder = user or team
        if holder is None:
            raise CommandError(f"No user, team or service account named {principal!r}.")
        action = services.grant_remove if revoke else services.grant_add
        try:
            action(actor=None, source=Source.cli(), asset=target, principal=holder, role=Role(role))
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        verb = "Revoked" if revoke else "Granted"
        self.stdout.write(f"{verb} {role} on {asset} {'from' if revoke else 'to'} {principal}.")
