"""Shared fixtures: the two storage back ends and an HTTP client on the real app.

PostgreSQL tests run against a real server: CAREPATH_TEST_POSTGRES_URL (default: the local server on
127.0.0.1:5432, database `test`). Each test session works in its own PostgreSQL schema, dropped afterwards.
Without a reachable server those tests are skipped with the reason printed — unless CAREPATH_REQUIRE_SERVICES=1
(set by CI), where a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from carepath.api.app import create_app
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "fhir-r4-examples"
POSTGRES_URL = os.environ.get("CAREPATH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CAREPATH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("CAREPATH_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int = 5432) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if _reachable(POSTGRES_URL):
        return
    message = f"PostgreSQL not reachable at {POSTGRES_URL} (set CAREPATH_TEST_POSTGRES_URL)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def require_redis() -> None:
    """Like require_postgres: skip with the reason, or fail under CAREPATH_REQUIRE_SERVICES=1."""
    if _reachable(REDIS_URL, 6379):
        return
    message = f"Redis not reachable at {REDIS_URL} (set CAREPATH_TEST_REDIS_URL)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """The test Redis (shared: use unique key names and delete them), after require_redis()."""
    require_redis()
    return REDIS_URL


def _postgres(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    require_postgres()
    schema = f"carepath_test_{uuid.uuid4().hex[:12]}"
    _postgres(f'CREATE SCHEMA "{schema}"')
    yield schema
    _postgres(f'DROP SCHEMA "{schema}" CASCADE')


# No background worker in the app under test: event tests run the duties themselves, deterministically.
_COMMON = {"load_pathways_on_start": False, "base_url": "http://testserver/fhir", "events_embedded": False}


@pytest.fixture
def postgres_settings(postgres_schema: str) -> Settings:
    """Settings on the real PostgreSQL server, in this test's own schema (for PostgreSQL-only tests)."""
    return Settings(database_url=POSTGRES_URL, database_schema=postgres_schema, **_COMMON)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one back end: each test gets its own SQLite file or its own PostgreSQL schema."""
    if request.param == "sqlite":
        return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'carepath.sqlite'}", **_COMMON)
    postgres: Settings = request.getfixturevalue("postgres_settings")
    return postgres


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real app built from `settings` (lifespan run: migrations applied)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture(scope="session")
def make_client() -> Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """`open_client` for tests that need their own settings (e.g. a small request size limit)."""
    return open_client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real app for the parametrised back end."""
    async with open_client(settings) as http:
        yield http


@pytest.fixture
async def pathway_client(
    settings: Settings, make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the shipped pathways loaded at start-up, as `carepath serve` does."""
    shipped = {"load_pathways_on_start": True, "pathways_dir": REPO_ROOT / "pathways"}
    async with make_client(settings.model_copy(update=shipped)) as http:
        yield http


@pytest.fixture
async def repository(settings: Settings) -> AsyncIterator[Repository]:
    """A repository on the parametrised back end, migrated (for tests below the HTTP layer)."""
    await upgrade_async(settings.effective_database_url, settings.database_schema)
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    repository = Repository(engine)
    try:
        yield repository
    finally:
        await repository.close()  # the change listener, if a page opened it (store/generations.py)
        await engine.dispose()
