"""What the benchmark scripts share: their error, the scratch PostgreSQL database they run on, and the
facts about the code and packages measured that every result file records."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """The bench could not set up or run; the message says what failed."""


class ScratchDatabase:
    """The bench database: dropped and created again on setup, dropped on cleanup.

    Its name must contain "bench", a guard against pointing a benchmark at a database that matters.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url, self.name = url, parts.path.lstrip("/")
        if "bench" not in self.name:
            raise BenchError(f"refusing to drop and recreate {self.name!r}: the name must contain 'bench'")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.server_version = ""

    def _admin(self, statement: str) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                version = conn.info.server_version  # 150020 is 15.20
                self.server_version = f"{version // 10000}.{version % 10000}"
                conn.execute(sql.SQL(statement).format(sql.Identifier(self.name)))
        except psycopg.OperationalError as exc:
            raise BenchError(
                f"PostgreSQL at {self.admin_url} is not reachable ({exc}); see --pg-url"
            ) from exc

    def create(self) -> str:
        self.drop()
        self._admin("CREATE DATABASE {}")
        return self.url

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def git_revision() -> str:
    """The commit measured, with "+dirty" when the work tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
