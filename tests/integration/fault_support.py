"""Servers and processes the fault tests own: a redis-server on a free loopback port (which they may kill and
restart), `carepath worker` subprocesses, and a PostgreSQL role they can lock out. Never the machine's servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tests.live_server import free_port

from carepath.settings import Settings


class OwnRedis:
    """A redis-server of this test: loopback, free port, AOF fsync always (entries survive a kill -9)."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            message = "redis-server is not installed (the Redis fault tests start their own)"
            if os.environ.get("CAREPATH_REQUIRE_SERVICES") == "1":
                pytest.fail(message)
            pytest.skip(message)
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextmanager
def own_redis(directory: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a `carepath worker` subprocess with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
    for name, value in settings.model_dump().items():
        if value not in ("", None):
            env[f"CAREPATH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["CAREPATH_LOG_LEVEL"] = "WARNING"
    return env


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "carepath.cli", "worker"], env=worker_env(settings),
                                stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip


async def eventually(check: Any, timeout: float, what: str) -> None:
    """Poll an async predicate until true (no timed assertion: the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s: {what}")


class LockableRole:
    """A PostgreSQL login role owning the test's schema objects, that the test can lock out and let back in."""

    def __init__(self, admin_url: str, schema: str) -> None:
        self.name = f"carepath_fault_{uuid.uuid4().hex[:10]}"
        self.admin_url, self.schema = admin_url, schema

    @property
    def url(self) -> str:
        base = self.admin_url.split("://", 1)[1].split("@", 1)[1]
        return f"postgresql+asyncpg://{self.name}@{base}"

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url.replace("+asyncpg", ""))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE ROLE "{self.name}" LOGIN; GRANT ALL ON SCHEMA "{self.schema}" TO "{self.name}"')

    async def lock_out(self) -> None:
        await self._admin(f'ALTER ROLE "{self.name}" NOLOGIN; SELECT pg_terminate_backend(pid) FROM '
                          f"pg_stat_activity WHERE usename = '{self.name}'")  # fmt: skip

    async def let_in(self) -> None:
        await self._admin(f'ALTER ROLE "{self.name}" LOGIN')

    async def drop(self) -> None:
        await self._admin(f'ALTER ROLE "{self.name}" NOLOGIN; SELECT pg_terminate_backend(pid) FROM '
                          f"pg_stat_activity WHERE usename = '{self.name}'")  # fmt: skip
        await self._admin(f'DROP OWNED BY "{self.name}" CASCADE; DROP ROLE "{self.name}"')
