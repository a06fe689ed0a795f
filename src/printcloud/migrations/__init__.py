"""Alembic migrations of the whole platform (one database, every service's tables)."""
