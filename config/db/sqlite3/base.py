"""Django's SQLite backend, with the database file (and its -wal, -shm, -journal) readable by its owner only.

The file holds live session keys and API token hashes. SQLite creates a database with mode 0644 under the
usual umask, and gives its -wal, -shm and -journal files the database file's mode: so the file is created
owner-only before SQLite opens it, and an existing one is narrowed to owner-only when a connection opens.
"""

import os
import stat
from pathlib import Path

from django.db.backends.sqlite3 import base

COMPANIONS = ("", "-wal", "-shm", "-journal")


def make_private(name: str | os.PathLike) -> None:
    """Create the database file owner-only if missing; narrow it and its companions to owner-only if not."""
    path = Path(name)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except FileNotFoundError:
        return  # no such directory: let SQLite report it
    else:
        os.close(descriptor)  # an empty file is an empty database
    for suffix in COMPANIONS:
        companion = Path(f"{path}{suffix}")
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
            if mode & 0o077:
                companion.chmod(mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # another user's file: not ours to change


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.is_in_memory_db() and not str(conn_params["database"]).startswith("file:"):
            make_private(conn_params["database"])
        return super().get_new_connection(conn_params)
