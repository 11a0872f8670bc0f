"""Schema migrations (Alembic), callable from the CLI and at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str, schema: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("carepath.schema", schema)
    return config


def upgrade(database_url: str, schema: str = "") -> None:
    """Bring the database to the newest schema (idempotent)."""
    command.upgrade(alembic_config(database_url, schema), "head")


async def upgrade_async(database_url: str, schema: str = "") -> None:
    # Alembic's env.py runs its own event loop, so it must not run on ours.
    await asyncio.to_thread(upgrade, database_url, schema)
