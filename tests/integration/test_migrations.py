"""The Alembic migrations build exactly the schema the code declares (store/schema.py), on both back ends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.schema import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_schema(settings: Settings) -> None:
    await upgrade_async(settings.effective_database_url, settings.database_schema)
    await upgrade_async(settings.effective_database_url, settings.database_schema)  # idempotent
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
