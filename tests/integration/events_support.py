"""Event test harness: a repository with the shipped pathways, the streams (real Redis or fakeredis, with stream
names unique to the test) and the duties run step by step, so tests are deterministic.

`events_env` is parametrised: "embedded" (SQLite + fakeredis, the default a laptop gets) and "real" (PostgreSQL
in the test's own schema + the shared Redis, every key under a prefix unique to the test, deleted afterwards).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carepath import jsonutil
from carepath.events.consumer import Consumer
from carepath.events.relay import relay_all
from carepath.events.shards import route, shards
from carepath.events.streams import Streams, connect
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

REPO_ROOT = Path(__file__).resolve().parents[2]
PATHWAY_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
WORSENED, STABLE = "271299001", "359746009"


def stream_names(prefix: str) -> dict[str, Any]:
    return {
        "events_inbound_stream": f"{prefix}:inbound",
        "events_outbound_stream": f"{prefix}:events",
        "events_dead_stream": f"{prefix}:inbound:dead",
        "events_group": "carepath",
        "events_claim_idle_ms": 1000,
        "events_retry_base_ms": 10,
        "events_block_ms": 50,
        "events_poll_ms": 10,
    }


def env_settings(tmp_path: Path, prefix: str, real: Settings | None = None, **extra: Any) -> Settings:
    """Embedded (SQLite file + fakeredis), or `real`: those PostgreSQL settings with their `redis_url`."""
    common: dict[str, Any] = {"load_pathways_on_start": False, "events_embedded": False, **stream_names(prefix)}
    common.update(extra)
    if real is None:
        return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'carepath.sqlite'}", **common)
    return real.model_copy(update=common)


def real_base(request: pytest.FixtureRequest) -> Settings:
    """The test's PostgreSQL schema and the test Redis (fixtures of tests/conftest.py); call outside the loop."""
    redis_url: str = request.getfixturevalue("redis_url")
    postgres: Settings = request.getfixturevalue("postgres_settings")
    return postgres.model_copy(update={"redis_url": redis_url})


async def delete_prefix(streams: Streams, prefix: str) -> None:
    """Remove this test's keys (never FLUSHDB: the Redis is shared)."""
    keys = [key async for key in streams.redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await streams.redis.delete(*keys)


@dataclass
class EventEnv:
    settings: Settings
    repository: Repository
    streams: Streams
    consumer: Consumer
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    async def send(self, event: dict[str, Any] | bytes, **fields: Any) -> bytes:
        """XADD on the event's shard (the producers' rule, events/shards.py)."""
        raw = event if isinstance(event, bytes) else jsonutil.dumps(event)
        stream = route(self.settings, raw).stream
        entry_id: bytes = await self.streams.redis.xadd(stream, {"event": raw, **fields})
        return entry_id

    async def drain(self, rounds: int = 50) -> None:
        """Relay and consume until nothing moves (internal events of the HTTP door included)."""
        await self.consumer.setup()
        for _ in range(rounds):
            relayed = await relay_all(self.repository, self.streams)
            handled = await self.consumer.step()
            if not relayed and not handled and not await self._pending():
                return
        raise AssertionError("events still moving after the rounds allowed")

    async def _pending(self) -> int:
        group, redis = self.settings.events_group, self.streams.redis
        return sum([int((await redis.xpending(shard.stream, group))["pending"]) for shard in shards(self.settings)])

    async def outbound(self) -> list[dict[str, Any]]:
        entries = await self.streams.redis.xrange(self.settings.events_outbound_stream)
        return [jsonutil.loads(fields[b"event"]) for _, fields in entries]

    async def dead(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The dead-letter entries of every shard."""
        return [entry for shard in shards(self.settings) for entry in await self.streams.redis.xrange(shard.dead)]

    async def search(self, res_type: str, **params: str) -> list[dict[str, Any]]:
        from carepath.fhir.search.query import parse_search

        query = parse_search(res_type, [*params.items(), ("_count", "500")])
        async with self.repository.reader() as tx:
            return [stored.json() for _, stored in await tx.search(query)]

    async def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        async with self.repository.transaction() as tx:
            return (await tx.create(resource)).json()


def settings_for(request: pytest.FixtureRequest, tmp_path: Path, **extra: Any) -> Settings:
    """The body of a module's sync settings fixture, parametrised with ENVIRONMENTS (the PostgreSQL schema
    fixture must be requested outside the event loop)."""
    real = real_base(request) if request.param == "real" else None
    return env_settings(tmp_path, f"test:{uuid.uuid4().hex[:12]}", real, **extra)


ENVIRONMENTS = ["embedded", "real"]


class open_env:
    def __init__(self, settings: Settings, *, pathways: bool = True) -> None:
        self.settings, self.pathways = settings, pathways

    async def __aenter__(self) -> EventEnv:
        s = self.settings
        await upgrade_async(s.effective_database_url, s.database_schema)
        self.engine = create_engine(s.effective_database_url, schema=s.database_schema)
        repository = Repository(self.engine)
        if self.pathways:
            await load_pathways(repository, REPO_ROOT / "pathways")
        self.streams = connect(s)
        self.env = EventEnv(s, repository, self.streams, Consumer(repository, self.streams))
        return self.env

    async def __aexit__(self, *_exc: object) -> None:
        await delete_prefix(self.streams, self.settings.events_inbound_stream.rsplit(":", 1)[0])
        await self.streams.close()
        await self.engine.dispose()


def cloud_event(data: Any, *, type_: str = "dev.carepath.fhir.resource", event_id: str | None = None,
                source: str = "urn:test:feed", subject: str | None = None) -> dict[str, Any]:  # fmt: skip
    event = {"specversion": "1.0", "id": event_id or uuid.uuid4().hex, "source": source, "type": type_, "data": data}
    if subject:
        event["subject"] = subject
    return event


def patient(identifier: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "active": True, "name": [{"family": "Test"}]}
    if identifier:
        body["identifier"] = [{"system": "urn:test:mrn", "value": identifier}]
    return body


def disease_status(subject: str, answer: str = WORSENED, identifier: str = "", days_ago: float = 0,
                   now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    when = (now or datetime.now(UTC)) - timedelta(days=days_ago)
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when.replace(microsecond=0).isoformat(),
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]},
    }
    if identifier:
        body["identifier"] = [{"system": "urn:test:obs", "value": identifier}]
    return body


def pain_score(subject: str, score: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "72514-3"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "valueInteger": score,
    }
