"""Sharded inbound streams (CAREPATH_EVENTS_INBOUND_SHARDS=2) on both environments, the duties run step by step:
two consumers split the shards and keep each patient's order, a dead consumer's shards and in-flight entries are
taken over with no second effect, the HTTP door routes by patient, and status, dead letters and redrive span the
shards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from events_support import ENVIRONMENTS, EventEnv, cloud_event, patient, settings_for

from carepath.events.consumer import Consumer
from carepath.events.dead import list_dead, redrive
from carepath.events.envelope import parse_inbound
from carepath.events.relay import relay_all
from carepath.events.shards import Shard, shard_for, shards
from carepath.events.status import events_status
from carepath.service.event_intake import handle_event
from carepath.service.interactions import Interaction, execute_crud
from carepath.settings import Settings

LOINC = "http://loinc.org"


@pytest.fixture(params=ENVIRONMENTS)
def env_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, events_inbound_shards=2)


def vital(subject: str, n: int, key: str) -> dict[str, Any]:
    """Version n of the patient's one heart-rate Observation (conditional update on its identifier)."""
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": subject},
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "valueInteger": n,
            "identifier": [{"system": "urn:test:shard", "value": key}]}  # fmt: skip


async def patients_on_every_shard(env: EventEnv, per_shard: int) -> dict[int, list[str]]:
    """Patients created until each shard has `per_shard` of them (ids are the server's, so the spread is not)."""
    found: dict[int, list[str]] = {shard.index: [] for shard in shards(env.settings)}
    while min(len(p) for p in found.values()) < per_shard:
        subject = f"Patient/{(await env.create(patient()))['id']}"
        found[shard_for(env.settings, subject).index].append(subject)
    return {index: subjects[:per_shard] for index, subjects in found.items()}


async def send_versions(env: EventEnv, subjects: list[str], versions: int) -> None:
    for n in range(versions):  # interleaved across patients, in order per patient
        for subject in subjects:
            await env.send(cloud_event(vital(subject, n, subject), subject=subject))


async def assert_in_order_once(env: EventEnv, subjects: list[str], versions: int) -> None:
    async with env.repository.reader() as tx:
        for subject in subjects:
            [found] = await env.search("Observation", identifier=f"urn:test:shard|{subject}")
            history, _ = await tx.history("Observation", found["id"], since=None, count=500, offset=0)
            values = [v.json()["valueInteger"] for v in sorted(history, key=lambda v: v.version)]
            assert values == list(range(versions)), subject  # stream order, each exactly once
    assert await env.dead() == []


async def settled(env: EventEnv) -> bool:
    status = (await events_status(env.repository, env.streams))["inbound"]
    return bool(status["pending"] == 0 and status["lag"] == 0)


async def rounds(consumers: list[Consumer], until: Any, timeout: float = 60) -> dict[str, int]:
    """Step the consumers in turn until `until()`; entries handled by each (a deadline only bounds a hang)."""
    handled = {c.name: 0 for c in consumers}
    deadline = time.monotonic() + timeout
    while not await until():
        assert time.monotonic() < deadline, "not settled"
        for consumer in consumers:
            handled[consumer.name] += await consumer.step()
    return handled


def indexes(consumer: Consumer) -> set[int]:
    return {shard.index for shard in consumer.held}


async def test_two_consumers_split_the_shards_and_keep_each_patients_order(env: EventEnv) -> None:
    by_shard = await patients_on_every_shard(env, 3)
    subjects = [s for group in by_shard.values() for s in group]
    first, second = env.consumer, Consumer(env.repository, env.streams)
    await first.setup()

    async def split() -> bool:
        return indexes(first) | indexes(second) == {0, 1} and len(first.held) == len(second.held) == 1

    await rounds([first, second], split)  # the first takes both, then gives one up to the newcomer
    await send_versions(env, subjects, 15)
    for shard in shards(env.settings):
        assert await env.streams.redis.xlen(shard.stream) == 15 * 3  # each patient's events on its own shard
    handled = await rounds([first, second], lambda: settled(env))
    assert handled[first.name] == handled[second.name] == 45  # each consumer read exactly its shard
    await assert_in_order_once(env, subjects, 15)


async def test_a_dead_consumers_shard_and_entries_in_flight_are_taken_over_once(env: EventEnv) -> None:
    by_shard = await patients_on_every_shard(env, 2)
    survivor, dying = env.consumer, Consumer(env.repository, env.streams)
    await survivor.setup()

    async def split() -> bool:
        return len(survivor.held) == len(dying.held) == 1

    await rounds([survivor, dying], split)
    [lost] = dying.held
    subjects = [s for group in by_shard.values() for s in group]
    await send_versions(env, subjects, 10)
    # The dying consumer reads its shard's entries, commits the first one's effects, then dies before any XACK.
    s = env.settings
    [[_, in_flight]] = await env.streams.redis.xreadgroup(s.events_group, dying.name, {lost.stream: ">"}, count=20)
    assert len(in_flight) == 20
    await handle_event(env.repository, parse_inbound(in_flight[0][1][b"event"]), env.now)
    await rounds([survivor], lambda: settled(env))  # its lease and heartbeat lapse; the survivor reclaims
    assert indexes(survivor) == {0, 1}
    await assert_in_order_once(env, subjects, 10)  # the committed entry found its key: no second version
    status = await events_status(env.repository, env.streams)
    assert [shard["holder"] for shard in status["inbound"]["shards"]] == [survivor.name, survivor.name]
    assert status["inbound"]["workers"] == 1


async def test_the_http_door_queues_internal_events_on_the_patients_shard(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    async with env.repository.transaction() as tx:
        await execute_crud(tx, Interaction("create", "Observation", body=vital(subject, 1, "door")))
    await relay_all(env.repository, env.streams)
    home = shard_for(env.settings, subject)
    lengths = {shard.index: await env.streams.redis.xlen(shard.stream) for shard in shards(env.settings)}
    assert lengths == {home.index: 1, 1 - home.index: 0}
    await env.drain()
    assert await settled(env)


async def test_status_dead_letters_and_redrive_span_the_shards(env: EventEnv) -> None:
    by_shard = await patients_on_every_shard(env, 1)
    bad = {"resourceType": "Observation", "status": "bogus"}  # not valid FHIR: dead-lettered on its shard
    for [subject] in by_shard.values():
        await env.send(cloud_event(bad, subject=subject))
    await env.drain()
    letters = await list_dead(env.streams)
    assert sorted(letter.shard for letter in letters) == [0, 1]
    assert all(letter.id == f"{letter.shard}/{letter.entry_id}" for letter in letters)
    status = await events_status(env.repository, env.streams)
    assert status["dead_letters"]["count"] == 2
    inbound = status["inbound"]
    assert inbound["pending"] == 0 and inbound["length"] == sum(shard["length"] for shard in inbound["shards"])
    assert [shard["stream"] for shard in inbound["shards"]] == [shard.stream for shard in shards(env.settings)]
    one = next(letter for letter in letters if letter.shard == 1)
    assert len(await redrive(env.streams, [one.id])) == 1
    assert [letter.id for letter in await list_dead(env.streams)] == [d.id for d in letters if d.shard == 0]
    back = await _entries(env, shards(env.settings)[1])
    assert back[-1] == one.event  # unchanged, on the shard it came from
    await env.drain()
    assert (await events_status(env.repository, env.streams))["dead_letters"]["count"] == 2  # still not valid


async def _entries(env: EventEnv, shard: Shard) -> list[bytes]:
    return [fields[b"event"] for _, fields in await env.streams.redis.xrange(shard.stream)]
