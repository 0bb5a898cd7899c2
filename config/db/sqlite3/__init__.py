"""SQLite with owner-only database files."""
