"""The events door (CAREPATH_EVENTS_ALLOWED_SOURCES) on both environments: an event from a source not listed is
dead-lettered at once with a 403-style OperationOutcome and never applied; a listed producer's event enrols and
its Provenance names that producer; carepath's own internal events (the HTTP door) always pass."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from events_support import ENVIRONMENTS, EventEnv, cloud_event, disease_status, patient, settings_for

from carepath import jsonutil
from carepath.events.dead import list_dead
from carepath.settings import Settings

FEED = "urn:test:feed"
FHIR = {"Content-Type": "application/fhir+json"}
MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(params=ENVIRONMENTS)
def env_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, events_allowed_sources=f" {FEED} , urn:test:other")


async def test_an_event_from_an_unlisted_source_is_dead_lettered_and_never_applied(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    raw = jsonutil.dumps(cloud_event(disease_status(subject), source="urn:test:intruder"))
    origin = await env.send(raw)
    await env.drain()
    [letter] = await list_dead(env.streams)
    assert (letter.event, letter.origin_id, letter.attempts) == (raw, origin.decode(), 1)
    [issue] = letter.error["issue"]
    assert issue["code"] == "forbidden"
    assert "urn:test:intruder" in issue["diagnostics"]
    assert issue["expression"] == ["source"]
    assert await env.search("Observation", subject=subject) == []  # never applied
    assert await env.search("CarePlan", subject=subject) == []
    s = env.settings
    assert (await env.streams.redis.xpending(s.events_inbound_stream, s.events_group))["pending"] == 0


async def test_a_listed_source_is_applied_and_named_in_the_provenance(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    event = cloud_event(disease_status(subject), source=FEED)
    await env.send(event)
    await env.drain()
    assert await list_dead(env.streams) == []
    [careplan] = await env.search("CarePlan", subject=subject)
    provenance = await env.search("Provenance", target=f"CarePlan/{careplan['id']}")
    whats = [e["what"] for p in provenance for e in p["entity"]]
    assert {"system": FEED, "value": event["id"]} in [w.get("identifier") for w in whats]
    assert any(FEED in w.get("display", "") for w in whats)


async def test_the_internal_events_of_the_http_door_always_pass(env: EventEnv, make_client: MakeClient) -> None:
    async with make_client(env.settings) as http:
        created = await http.post("/fhir/Patient", json=patient(), headers=FHIR)
        subject = f"Patient/{created.json()['id']}"
        observation = await http.post("/fhir/Observation", json=disease_status(subject), headers=FHIR)
        assert observation.status_code == 201, observation.text
    await env.drain()
    assert await list_dead(env.streams) == []
    assert len(await env.search("CarePlan", subject=subject)) == 1


async def test_a_foreign_type_from_the_internal_source_is_still_checked(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    internal = env.settings.internal_event_source
    await env.send(cloud_event({"name": "chemotherapy-failure", "subject": subject},
                               type_="dev.carepath.named-event", source=internal))  # fmt: skip
    await env.drain()
    [letter] = await list_dead(env.streams)
    assert letter.error["issue"][0]["code"] == "forbidden"
