"""Persistence: one repository over SQLAlchemy 2 async (SQLite embedded, PostgreSQL in production)."""
