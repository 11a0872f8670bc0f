"""`carepath events status | dead list | dead redrive` and `carepath worker` refusing to run without Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from events_support import cloud_event, env_settings, open_env, real_base
from fault_support import worker_env

from carepath.cli import main
from carepath.events.shards import shards
from carepath.settings import Settings, get_settings


@pytest.fixture(params=[1, 2], ids=["one-stream", "two-shards"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    sharding = {"events_inbound_shards": request.param}
    return env_settings(tmp_path, f"test:{uuid.uuid4().hex[:12]}", real_base(request), **sharding)


def _use(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in worker_env(settings).items():
        if name.startswith("CAREPATH_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()


async def test_dead_letters_are_listed_redriven_and_counted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with open_env(settings, pathways=False) as env:
        await env.send(cloud_event({}, type_="com.example.unknown"))
        await env.drain()
        _use(settings, monkeypatch)
        try:
            assert await _cli(["events", "dead", "list"]) == 0
            [line] = capsys.readouterr().out.splitlines()
            letter = json.loads(line)
            assert letter["error"]["issue"][0]["code"] == "not-supported"
            assert await _cli(["events", "status"]) == 0
            status = json.loads(capsys.readouterr().out)
            assert status["dead_letters"]["count"] == 1
            assert status["inbound"]["pending"] == 0
            assert len(status["inbound"]["shards"]) == settings.events_inbound_shards
            assert letter["id"].startswith("0/") == (settings.events_inbound_shards > 1)  # no patient: shard 0
            assert await _cli(["events", "dead", "redrive", letter["id"]]) == 0
            assert "redriven: 1" in capsys.readouterr().out
            assert await env.dead() == []
            assert await env.streams.redis.xlen(shards(settings)[0].stream) >= 1
        finally:
            get_settings.cache_clear()


async def _cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)  # the CLI runs its own event loop


def test_worker_needs_a_redis_url(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CAREPATH_REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["worker"]) == 2
    finally:
        get_settings.cache_clear()
    assert "CAREPATH_REDIS_URL" in capsys.readouterr().err
