"""audit_export --format csv|jsonl|bundle [--since] [--until] [--asset kind/name] [--out FILE]."""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from audit import export
from registry.models import Asset


class Command(BaseCommand):
    help = "Export the audit log (streamed, constant memory)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "jsonl", "bundle"], default="bundle")
        parser.add_argument("--since", help="ISO 8601 time (inclusive)")
        parser.add_argument("--until", help="ISO 8601 time (exclusive)")
        parser.add_argument("--asset", help="model/NAME, prompt/NAME or dataset/NAME")
        parser.add_argument("--out", help="file to write (default: standard output)")

    def handle(self, *args, format, since, until, asset, out, **options):
        filters = export.Filters(
            since=_time(since, "--since"), until=_time(until, "--until"), asset_id=_asset(asset)
        )
        chunks = {
            "csv": lambda: (row.encode() for row in export.csv_rows(filters)),
            "jsonl": lambda: export.jsonl(filters),
            "bundle": lambda: export.bundle(filters),
        }[format]()
        handle = open(out, "wb") if out else sys.stdout.buffer  # noqa: SIM115 - closed below
        try:
            for chunk in chunks:
                handle.write(chunk)
        finally:
            if out:
                handle.close()


def _time(value, option):
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{option} must be an ISO 8601 time with a zone, e.g. 2026-01-31T00:00:00Z")
    return parsed


def _asset(value):
    if value is None:
        return None
    kind, _, name = value.partition("/")
    asset = Asset.objects.filter(kind=kind, name=name).first()
    if asset is None:
        raise CommandError(f"no asset {value}")
    return asset.pk
