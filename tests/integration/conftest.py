"""Fixtures of the event tests: each test on the embedded default (SQLite + fakeredis) and on real PostgreSQL +
Redis, with stream names of its own (tests/integration/events_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from events_support import ENVIRONMENTS, EventEnv, open_env, settings_for

from carepath.settings import Settings


@pytest.fixture(params=ENVIRONMENTS)
def env_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A module may override this (e.g. with extra settings); `env` then uses its version."""
    return settings_for(request, tmp_path)


@pytest.fixture
async def env(env_settings: Settings) -> AsyncIterator[EventEnv]:
    async with open_env(env_settings) as e:
        yield e
