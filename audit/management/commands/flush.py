"""Django's flush, which the audit log's triggers refuse, except where settings.AUDIT_ALLOW_FLUSH is on.

Only the test suite turns it on (it empties the database between transactional tests). Elsewhere a
flush fails on the audit tables and, being one transaction, changes nothing.
"""

from django.conf import settings
from django.core.management.commands import flush
from django.db import connections

from audit import triggers


class Command(flush.Command):
    def handle(self, **options):
        if not settings.AUDIT_ALLOW_FLUSH:
            return super().handle(**options)
        connection = connections[options["database"]]
        with triggers.suspended(connection):
            return super().handle(**options)
