"""What the benchmark scripts share: their error, and the scratch PostgreSQL database they run on."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
