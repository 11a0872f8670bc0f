"""Re-evaluation of an active CarePlan (both environments): a severe pain score arriving later adds the urgent
pain-specialist referral to that CarePlan, once, escalates open Tasks without ever de-escalating, and raises an
alert event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from events_support import (
    EventEnv,
    cloud_event,
    disease_status,
    pain_score,
    patient,
)

from carepath.engine.reevaluate import action_id


async def _tasks_by_action(env: EventEnv, careplan: str) -> dict[str, dict[str, Any]]:
    return {action_id(t) or "": t for t in await env.search("Task", **{"based-on": careplan})}


T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


async def _enrol(env: EventEnv) -> tuple[str, str]:
    env.consumer.clock = lambda: T0
    subject = f"Patient/{(await env.create(patient()))['id']}"
    await env.send(cloud_event(disease_status(subject)))
    await env.drain()
    [careplan] = await env.search("CarePlan", subject=subject)
    return subject, f"CarePlan/{careplan['id']}"


async def test_severe_pain_adds_the_urgent_referral_once_and_escalates(env: EventEnv) -> None:
    subject, careplan = await _enrol(env)
    before = await _tasks_by_action(env, careplan)
    assert "S07b" not in before and before["S07"]["priority"] == "routine"
    published = len(await env.outbound())
    later = T0 + timedelta(days=2)
    env.consumer.clock = lambda: later  # the pain score arrives two days after the start
    await env.send(cloud_event(pain_score(subject, 8)))
    await env.drain()
    after = await _tasks_by_action(env, careplan)
    assert set(after) - set(before) == {"S07b"}  # exactly the newly applicable action
    referral = after["S07b"]
    assert referral["priority"] == "urgent"
    # due dates counted from the triggering event (S07b: 3 days), not from the pathway's start
    assert referral["restriction"]["period"] == {"start": _instant(later), "end": _instant(later + timedelta(days=3))}
    assert after["S07"]["priority"] == "urgent"  # pain assessment escalated: urgent is 1 day, from the event
    assert after["S07"]["restriction"]["period"]["end"] == _instant(later + timedelta(days=1))
    assert before["S07"]["restriction"]["period"]["end"] == _instant(T0 + timedelta(days=7))
    assert after["S01"] == before["S01"]  # untouched
    [updated] = await env.search("CarePlan", subject=subject)
    assert {"reference": referral["focus"]["reference"]} in [a.get("reference") for a in updated["activity"]]
    events = (await env.outbound())[published:]
    types = [(e["type"], e["data"]["id"]) for e in events]
    assert ("dev.carepath.task.created", referral["id"]) in types
    assert ("dev.carepath.task.status-changed", after["S07"]["id"]) in types
    assert ("dev.carepath.alert", referral["id"]) in types
    provenance = await env.search("Provenance", target=f"Task/{referral['id']}")
    assert len(provenance) == 1
    # the same pain again (a new measurement): nothing is added twice
    await env.send(cloud_event(pain_score(subject, 9)))
    await env.drain()
    assert await _tasks_by_action(env, careplan) == after


async def test_less_pain_never_de_escalates(env: EventEnv) -> None:
    subject, careplan = await _enrol(env)
    await env.send(cloud_event(pain_score(subject, 8)))
    await env.drain()
    escalated = await _tasks_by_action(env, careplan)
    await env.send(cloud_event(pain_score(subject, 2)))
    await env.drain()
    assert await _tasks_by_action(env, careplan) == escalated  # nothing removed, nothing lowered


async def test_a_resource_the_pathway_does_not_read_changes_nothing(env: EventEnv) -> None:
    subject, careplan = await _enrol(env)
    before = await _tasks_by_action(env, careplan)
    vital = {"resourceType": "Observation", "status": "final", "subject": {"reference": subject},
             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "valueInteger": 80}  # fmt: skip
    published = len(await env.outbound())
    await env.send(cloud_event(vital))
    await env.drain()
    assert await _tasks_by_action(env, careplan) == before
    assert len(await env.outbound()) == published
