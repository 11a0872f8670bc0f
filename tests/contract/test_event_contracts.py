"""contracts/events/ (AsyncAPI 3.0 + a JSON Schema per event type) against what the code really emits.

Every schema and example is valid; every event type the code can emit has a schema and a message on the right
channel; the events emitted by a real run (enrolment, the HTTP door, a dead letter) validate against them.
"""

from __future__ import annotations

import json
import sys
import typing
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from carepath import jsonutil
from carepath.domain_events import EventType
from carepath.errors import Issue
from carepath.events.dead import dead_letter
from carepath.events.shards import shards
from carepath.service.event_intake import INBOUND_TYPES
from carepath.settings import Settings

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "contracts" / "events"
sys.path.insert(0, str(REPO / "tests" / "integration"))
from events_support import cloud_event, disease_status, env_settings, open_env, patient  # noqa: E402

SCHEMAS = {p.name: json.loads(p.read_text("utf-8")) for p in (EVENTS / "schemas").glob("*.json")}
ASYNCAPI = json.loads((EVENTS / "asyncapi.json").read_text("utf-8"))
REGISTRY = Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY, format_checker=FormatChecker())


def assert_valid(name: str, instance: Any) -> None:
    errors = [e.message for e in validator(name).iter_errors(instance)]
    assert errors == [], f"{name}: {errors}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_and_example_is_valid(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])
    examples = SCHEMAS[name].get("examples", [])
    assert examples or name.startswith("cloudevent-")
    for example in examples:
        assert_valid(name, example)


def _channel_types(channel: str) -> set[str]:
    messages = ASYNCAPI["channels"][channel]["messages"].values()
    return {ASYNCAPI["components"]["messages"][m["$ref"].rsplit("/", 1)[1]]["title"] for m in messages}


def test_the_asyncapi_document_names_the_streams_and_every_type() -> None:
    defaults = Settings()
    assert ASYNCAPI["asyncapi"].startswith("3.")
    channels = ASYNCAPI["channels"]
    assert channels["inbound"]["address"] == defaults.events_inbound_stream
    assert channels["events"]["address"] == defaults.events_outbound_stream
    assert channels["dead"]["address"] == defaults.events_dead_stream
    assert channels["inbound"]["x-consumer-group"] == defaults.events_group
    sharded = ASYNCAPI["channels"]["inbound"]["x-shards"]
    assert sharded["default"] == defaults.events_inbound_shards == 1
    [_, second, _] = shards(Settings(events_inbound_shards=3))  # the names the document gives, for shard 1
    assert (sharded["address"].replace("<shard>", "1"), sharded["dead-letter-address"].replace("<shard>", "1")) == (
        second.stream, second.dead
    )  # fmt: skip
    assert {o["action"] for o in ASYNCAPI["operations"].values()} == {"send", "receive"}
    assert _channel_types("events") == set(typing.get_args(EventType))
    assert _channel_types("inbound") == set(INBOUND_TYPES)
    for message in ASYNCAPI["components"]["messages"].values():
        target = message["payload"]["schema"]["$ref"].removeprefix("./schemas/")
        assert target in SCHEMAS
        if message["title"] != "dead letter":
            assert message["contentType"] == "application/cloudevents+json"
            assert target == f"{message['title']}.json"


async def test_events_emitted_by_a_run_match_the_contract(tmp_path: Path, make_client: MakeClient) -> None:
    settings = env_settings(tmp_path, f"test:{uuid.uuid4().hex[:12]}")
    async with open_env(settings) as env:
        async with make_client(settings) as http:  # the HTTP door: internal events
            body = patient()
            response = await http.post("/fhir/Patient", json=body, headers={"Content-Type": "application/fhir+json"})
            subject = f"Patient/{response.json()['id']}"
        from carepath.events.relay import relay_all

        await relay_all(env.repository, env.streams)
        internal = [
            jsonutil.loads(f[b"event"]) for _, f in await env.streams.redis.xrange(settings.events_inbound_stream)
        ]
        assert [e["type"] for e in internal] == ["dev.carepath.internal.resource-stored"]
        await env.send(cloud_event(disease_status(subject)))
        await env.drain()
        emitted = await env.outbound()
        await dead_letter(env.streams, shards(settings)[0], (await env.send(b"{")), b"{", [Issue("not JSON")], 1)
        letters = [{k.decode(): v.decode() for k, v in f.items()} for _, f in await env.dead()]
    for event in internal:
        assert_valid(f"{event['type']}.json", event)
    assert {e["type"] for e in emitted} == {"dev.carepath.careplan.created", "dev.carepath.task.created"}
    for event in emitted:
        assert_valid(f"{event['type']}.json", event)
    assert letters
    for letter in letters:
        assert_valid("dead-letter.json", letter)
