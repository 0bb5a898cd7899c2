#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    named = "DJANGO_SETTINGS_MODULE" in os.environ or any(arg.startswith("--settings") for arg in sys.argv)
    database = os.environ.get("DATABASE_URL", "")
    if not named and database and not database.startswith("sqlite:"):
        # The default is the development settings (DEBUG, a published secret, a signing key made on first
        # use): never silently against a database server, which is where production data lives.
        sys.exit(
            "manage.py: DATABASE_URL names a database server but DJANGO_SETTINGS_MODULE is not set. Set it "
            "to config.settings.base in production, or to config.settings.dev for a development database."
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
