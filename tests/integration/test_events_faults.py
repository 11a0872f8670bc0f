"""Fault tests on real Redis and PostgreSQL: redelivery, kill -9 of a worker with many events in flight, a Redis
restarted mid-run, the database unavailable for a while, two workers sharing the stream, per-patient order.

Each test has its own PostgreSQL schema and its own stream names; a Redis that a test kills is one it started
itself on a free port. Deadlines only bound a hang: nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from events_support import EventEnv, cloud_event, disease_status, env_settings, open_env, patient, real_base
from fault_support import LockableRole, eventually, own_redis, start_worker

from carepath import jsonutil
from carepath.events.consumer import Consumer
from carepath.events.leases import holder
from carepath.events.shards import route, shards
from carepath.events.status import events_status
from carepath.events.streams import connect
from carepath.events.worker import default_duties, run_duties
from carepath.service.interactions import Interaction, execute_crud
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.repository import Repository

LOINC = "http://loinc.org"
KILL_EVENTS = int(os.environ.get("CAREPATH_FAULT_EVENTS", "2000"))  # the issue says 5,000; see README


def vital(subject: str, n: int, marker: str) -> dict[str, Any]:
    """A heart-rate Observation (triggers nothing): one stored resource is the whole effect of its event."""
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}], "text": marker},
            "subject": {"reference": subject}, "valueInteger": n}  # fmt: skip


@pytest.fixture
def base(request: pytest.FixtureRequest) -> Settings:
    return real_base(request)


def real_settings(base: Settings, tmp_path: Path, **extra: Any) -> Settings:
    return env_settings(tmp_path, f"test:{uuid.uuid4().hex[:12]}", base, **extra)


@pytest.fixture
def settings_real(base: Settings, tmp_path: Path) -> Settings:
    return real_settings(base, tmp_path)


@pytest.fixture
async def env(settings_real: Settings) -> AsyncIterator[EventEnv]:
    async with open_env(settings_real) as e:
        yield e


async def _observations(env: EventEnv, marker: str) -> list[dict[str, Any]]:
    found = []
    async with env.repository.reader() as tx:
        from carepath.fhir.search.query import parse_search

        offset = 0
        while True:
            query = parse_search("Observation", [("code", f"{LOINC}|8867-4"), ("_count", "500"),
                                                 ("_offset", str(offset))])  # fmt: skip
            page = [s.json() for _, s in await tx.search(query)]
            found += [o for o in page if o["code"].get("text") == marker]
            if len(page) < 500:
                return found
            offset += 500


async def _settled(env: EventEnv) -> bool:
    inbound = (await events_status(env.repository, env.streams))["inbound"]
    return bool(inbound["pending"] == 0 and inbound["lag"] == 0)


async def test_a_redelivered_entry_has_no_second_effect(env: EventEnv) -> None:
    """A worker commits but dies before XACK: another claims the entry after the idle time, finds the key, acks."""
    subject = f"Patient/{(await env.create(patient()))['id']}"
    await env.consumer.setup()
    await env.send(cloud_event(vital(subject, 1, "redelivery")))
    s = env.settings
    [[_, [(_, fields)]]] = await env.streams.redis.xreadgroup(
        s.events_group, "dying-worker", {s.events_inbound_stream: ">"}, count=1
    )
    from carepath.events.envelope import parse_inbound
    from carepath.service.event_intake import handle_event

    await handle_event(env.repository, parse_inbound(fields[b"event"]), env.now)  # committed, never acknowledged
    await eventually(lambda: _claimed(env), 15, "the entry claimed and acknowledged by the live consumer")
    assert len(await _observations(env, "redelivery")) == 1
    assert await env.dead() == []


async def _claimed(env: EventEnv) -> bool:
    await env.consumer.step()
    return await _settled(env)


@pytest.mark.parametrize("shard_count", [1, 2])
async def test_kill_9_of_a_worker_with_events_in_flight_loses_and_duplicates_nothing(
    base: Settings, tmp_path: Path, shard_count: int
) -> None:
    """One shard: the only worker is killed, a new one finishes. Two shards: one of two workers reading in parallel
    is killed, and the survivor takes its shard over (lease lapsed, pending entries reclaimed) and finishes."""
    async with open_env(real_settings(base, tmp_path, events_inbound_shards=shard_count)) as env:
        patients = [f"Patient/{(await env.create(patient()))['id']}" for _ in range(20)]
        await env.consumer.setup()
        pipe = env.streams.redis.pipeline(transaction=False)
        for n in range(KILL_EVENTS):
            raw = jsonutil.dumps(cloud_event(vital(patients[n % len(patients)], n, "kill9")))
            pipe.xadd(route(env.settings, raw).stream, {"event": raw})
        await pipe.execute()
        workers = [start_worker(env.settings, tmp_path / f"worker{i}.log") for i in range(shard_count)]
        try:
            await eventually(lambda: _holders_are(env, shard_count), 60, "each shard read by its own worker")
            await eventually(lambda: _at_least(env, "kill9", KILL_EVENTS // 5), 300, "a fifth processed")
        finally:
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
        assert len(await _observations(env, "kill9")) < KILL_EVENTS  # it really died with work left
        finishing = workers[1:] or [start_worker(env.settings, tmp_path / "restarted.log")]
        try:
            await eventually(lambda: _settled(env), 600, "every entry processed after the kill")
        finally:
            for worker in finishing:
                worker.send_signal(signal.SIGTERM)  # graceful: finishes in-flight entries, releases the leases
                assert worker.wait(timeout=60) == 0
        stored = await _observations(env, "kill9")
        assert sorted(o["valueInteger"] for o in stored) == list(range(KILL_EVENTS))  # each exactly once
        assert await env.dead() == []


async def _at_least(env: EventEnv, marker: str, count: int) -> bool:
    return len(await _observations(env, marker)) >= count


async def test_redis_restarted_mid_run_delays_and_loses_nothing(base: Settings, tmp_path: Path) -> None:
    with own_redis(tmp_path) as redis_server:
        settings = real_settings(base, tmp_path, redis_url=redis_server.url)
        async with open_env(settings) as env:
            subject = f"Patient/{(await env.create(patient()))['id']}"
            others = [f"Patient/{(await env.create(patient()))['id']}" for _ in range(3)]
            await env.consumer.setup()
            for n in range(200):
                await env.send(cloud_event(vital(subject, n, "restart")))
            stop = asyncio.Event()
            duties = asyncio.create_task(run_duties(default_duties(env.repository, env.streams), stop))
            try:
                await eventually(lambda: _at_least(env, "restart", 20), 120, "some processed before the restart")
                redis_server.kill()
                # meanwhile writes through the FHIR service (the HTTP door): their outbox rows wait for Redis
                for other in others:
                    async with env.repository.transaction() as tx:
                        await execute_crud(tx, Interaction("create", "Observation", body=disease_status(other)))
                await asyncio.sleep(1.5)
                redis_server.start()
                await eventually(lambda: _settled(env), 300, "the stream drained after the restart")
                await eventually(lambda: _enrolled(env, others), 120, "the HTTP-door events relayed and applied")
            finally:
                stop.set()
                await duties
            assert sorted(o["valueInteger"] for o in await _observations(env, "restart")) == list(range(200))
            created = [e for e in await env.outbound() if e["type"] == "dev.carepath.careplan.created"]
            assert sorted({e["subject"] for e in created}) == sorted(others)  # none lost (ids de-duplicate)


async def _enrolled(env: EventEnv, subjects: list[str]) -> bool:
    for subject in subjects:
        if not await env.search("CarePlan", subject=subject):
            return False
    return True


async def test_database_unavailable_for_a_while_leaves_entries_pending_then_completes(
    base: Settings, tmp_path: Path
) -> None:
    role = LockableRole(base.database_url, base.database_schema)
    await role.create()
    try:
        admin = real_settings(base, tmp_path)
        settings = admin.model_copy(update={"database_url": role.url})
        async with open_env(settings) as env:  # migrated as the role: it owns the tables
            subject = f"Patient/{(await env.create(patient()))['id']}"
            await env.consumer.setup()
            for n in range(30):
                await env.send(cloud_event(vital(subject, n, "outage")))
            await role.lock_out()
            stop = asyncio.Event()
            duties = asyncio.create_task(run_duties(default_duties(env.repository, env.streams), stop))
            try:
                await asyncio.sleep(2)
                s = env.settings
                group = (await env.streams.redis.xinfo_groups(s.events_inbound_stream))[0]
                assert group["pending"] + group["lag"] == 30  # nothing acknowledged, nothing dead
                assert await env.dead() == []
                await role.let_in()
                await eventually(lambda: _settled(env), 120, "completed after the database came back")
            finally:
                stop.set()
                await duties
            assert sorted(o["valueInteger"] for o in await _observations(env, "outage")) == list(range(30))
            assert await env.dead() == []
    finally:
        await role.drop()


@pytest.mark.parametrize("shard_count", [1, 2])
async def test_two_workers_share_the_streams_and_keep_each_patients_order(
    base: Settings, tmp_path: Path, shard_count: int
) -> None:
    """One shard: one worker reads, the other stands by. Two shards: each worker reads one, in parallel. Either
    way the worker left alone after the other stops (SIGTERM) reads every shard, and each patient's order holds."""
    async with open_env(real_settings(base, tmp_path, events_inbound_shards=shard_count)) as env:
        patients = [f"Patient/{(await env.create(patient()))['id']}" for _ in range(6)]
        await env.consumer.setup()
        for n in range(40):  # per patient: 40 versions of one Observation, interleaved across patients
            for index, subject in enumerate(patients):
                body = {**vital(subject, n, "order"), "identifier": [{"system": "urn:test:order", "value": str(index)}]}
                await env.send(cloud_event(body, subject=subject))
        engines = [create_engine(env.settings.effective_database_url, schema=env.settings.database_schema)
                   for _ in range(2)]  # fmt: skip
        stops = [asyncio.Event(), asyncio.Event()]
        streams = [connect(env.settings) for _ in range(2)]
        consumers = [Consumer(Repository(e), s) for e, s in zip(engines, streams, strict=True)]
        names = [c.name for c in consumers]
        tasks = [asyncio.create_task(c.run(stop)) for c, stop in zip(consumers, stops, strict=True)]
        try:
            # every shard has its own holder: with two shards both workers read at once
            await eventually(lambda: _holders_are(env, shard_count), 60, "each shard held by its own worker")
            await eventually(lambda: _at_least_versions(env, 30), 120, "some processed")
            leaving = names.index((await _holders(env))[0])
            stops[leaving].set()  # the worker reading shard 0 stops: in-flight entries finish, leases released
            await tasks[leaving]
            staying = names[1 - leaving]
            await eventually(lambda: _all_held_by(env, staying), 60, "the remaining worker takes every shard")
            await eventually(lambda: _settled(env), 300, "all processed by the remaining worker")
        finally:
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks)
            for s in streams:
                await s.close()
            for e in engines:
                await e.dispose()
        async with env.repository.reader() as tx:
            for index, subject in enumerate(patients):
                [found] = await env.search("Observation", identifier=f"urn:test:order|{index}")
                versions, _ = await tx.history("Observation", found["id"], since=None, count=100, offset=0)
                values = [v.json()["valueInteger"] for v in sorted(versions, key=lambda v: v.version)]
                assert values == list(range(40)), subject  # stream order, each once
        assert await env.dead() == []


async def _at_least_versions(env: EventEnv, count: int) -> bool:
    async with env.repository.reader() as tx:
        _, total = await tx.history("Observation", None, since=None, count=1, offset=0)
    return total >= count


async def _holders(env: EventEnv) -> list[str | None]:
    return [await holder(env.streams, shard) for shard in shards(env.settings)]


async def _holders_are(env: EventEnv, distinct: int) -> bool:
    held = await _holders(env)
    return None not in held and len(set(held)) == distinct


async def _all_held_by(env: EventEnv, name: str) -> bool:
    return set(await _holders(env)) == {name}
