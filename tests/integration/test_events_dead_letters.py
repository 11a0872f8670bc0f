"""Poison and permanent failures go to the dead-letter stream at once, with the original bytes and an
OperationOutcome; redrive puts them back (both environments)."""

from __future__ import annotations

import pytest
from events_support import STABLE, EventEnv, cloud_event, disease_status, patient

from carepath import jsonutil
from carepath.events.dead import list_dead, redrive

POISON = [
    (b"not json {", "invalid"),
    (b'["an", "array"]', "invalid"),
    (jsonutil.dumps({"specversion": "0.3", "id": "1", "source": "s", "type": "dev.carepath.named-event"}), "invalid"),
    (jsonutil.dumps({"specversion": "1.0", "source": "s", "type": "dev.carepath.named-event", "data": {}}), "invalid"),
    (jsonutil.dumps(cloud_event({}, type_="com.example.unknown")), "not-supported"),
    (jsonutil.dumps(cloud_event({"resourceType": "Observation", "status": "bogus"})), "invalid"),  # not valid FHIR
    (jsonutil.dumps(cloud_event({"resourceType": "NoSuchType"})), "invalid"),
    (jsonutil.dumps(cloud_event({"name": "x"}, type_="dev.carepath.named-event")), "invalid"),  # no subject
]


@pytest.mark.parametrize(("raw", "code"), POISON)
async def test_poison_is_dead_lettered_at_once_byte_for_byte(env: EventEnv, raw: bytes, code: str) -> None:
    origin = await env.send(raw, extra="ignored")
    await env.drain()
    [(_, fields)] = await env.dead()
    assert fields[b"event"] == raw
    assert fields[b"origin_id"] == origin
    assert int(fields[b"attempts"]) == 1
    assert fields[b"failed_at"].endswith(b"Z")
    outcome = jsonutil.loads(fields[b"error"])
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    s = env.settings
    assert (await env.streams.redis.xpending(s.events_inbound_stream, s.events_group))["pending"] == 0


async def test_an_entry_without_an_event_field_is_dead_lettered(env: EventEnv) -> None:
    await env.streams.redis.xadd(env.settings.events_inbound_stream, {"other": "x"})
    await env.drain()
    [(_, fields)] = await env.dead()
    assert fields[b"event"] == b""
    assert "no 'event' field" in jsonutil.loads(fields[b"error"])["issue"][0]["diagnostics"]


async def test_several_identifier_matches_dead_letter_with_412_then_redrive_succeeds(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    first = await env.create(disease_status(subject, STABLE, identifier="dup"))
    await env.create(disease_status(subject, STABLE, identifier="dup"))
    await env.send(cloud_event(disease_status(subject, identifier="dup")))
    await env.drain()
    [letter] = await list_dead(env.streams)
    assert letter.error["issue"][0]["code"] == "conflict"
    assert "more than one" in letter.error["issue"][0]["diagnostics"]
    assert len(await env.search("CarePlan", subject=subject)) == 0  # nothing half-written
    async with env.repository.transaction() as tx:  # someone cleans up the duplicate
        await tx.delete("Observation", first["id"])
    assert len(await redrive(env.streams, [letter.id])) == 1
    await env.drain()
    assert await list_dead(env.streams) == []
    assert len(await env.search("CarePlan", subject=subject)) == 1
    assert [o["meta"]["versionId"] for o in await env.search("Observation", subject=subject)] == ["2"]
