"""Fixtures of the integration tests that several modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from workflow_support import PATHWAYS

from carepath.settings import Settings


@pytest.fixture
async def pathway_client(
    settings: Settings, make_client: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the shipped pathways loaded at start-up, as `carepath serve` does."""
    async with make_client(settings.model_copy(update={"load_pathways_on_start": True, "pathways_dir": PATHWAYS})) as c:
        yield c
