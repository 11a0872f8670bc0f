"""Events end to end on both environments (SQLite + fakeredis; PostgreSQL + real Redis): an inbound CloudEvent
is stored, triggers the pathway once, and the CarePlan and its Tasks come out on the outbound stream."""

from __future__ import annotations

from events_support import (
    PATHWAY_URL,
    STABLE,
    EventEnv,
    cloud_event,
    disease_status,
    patient,
)


async def _enrolled(env: EventEnv, subject: str) -> list[dict]:
    return await env.search("CarePlan", subject=subject)


async def test_a_progression_event_enrols_the_patient_once(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    event = cloud_event(disease_status(subject, identifier="obs-1"))
    await env.send(event)
    await env.drain()
    careplans = await _enrolled(env, subject)
    assert [c["instantiatesCanonical"][0].split("|")[0] for c in careplans] == [PATHWAY_URL]
    tasks = await env.search("Task", subject=subject)
    assert len(tasks) >= 10
    provenance = await env.search("Provenance", target=f"CarePlan/{careplans[0]['id']}")
    entities = [e["what"] for p in provenance for e in p["entity"]]
    assert {"system": "urn:test:feed", "value": event["id"]} in [w.get("identifier") for w in entities]
    published = await env.outbound()
    assert [e["type"] for e in published].count("dev.carepath.careplan.created") == 1
    assert [e["type"] for e in published].count("dev.carepath.task.created") == len(tasks)
    assert {e["subject"] for e in published} == {subject}
    assert all(e["careplan"] == f"CarePlan/{careplans[0]['id']}" for e in published)
    assert len({e["id"] for e in published}) == len(published)
    # the very same event again (a redelivery or a re-send): no second effect
    await env.send(event)
    await env.drain()
    assert len(await _enrolled(env, subject)) == 1
    assert len(await env.search("Observation", subject=subject)) == 1
    assert len(await env.outbound()) == len(published)


async def test_a_resent_message_with_a_new_id_updates_instead_of_duplicating(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    await env.send(cloud_event(disease_status(subject, identifier="obs-2")))
    await env.send(cloud_event(disease_status(subject, identifier="obs-2")))
    await env.drain()
    observations = await env.search("Observation", subject=subject)
    assert [o["meta"]["versionId"] for o in observations] == ["2"]
    assert len(await _enrolled(env, subject)) == 1  # at most one active CarePlan per patient and pathway


async def test_a_stable_disease_status_triggers_nothing(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    await env.send(cloud_event(disease_status(subject, STABLE)))
    await env.drain()
    assert await _enrolled(env, subject) == []
    assert len(await env.search("Observation", subject=subject)) == 1
    assert await env.outbound() == []


async def test_the_named_event_enrols_when_the_entry_rule_holds(env: EventEnv) -> None:
    subject = f"Patient/{(await env.create(patient()))['id']}"
    # Stored before the pathway could see it (no worker ran): only the named event starts the pathway.
    await env.create(disease_status(subject))
    await env.send(cloud_event({"name": "chemotherapy-failure", "subject": subject},
                               type_="dev.carepath.named-event"))  # fmt: skip
    other = f"Patient/{(await env.create(patient()))['id']}"
    await env.send(cloud_event({"name": "something-else", "subject": other}, type_="dev.carepath.named-event"))
    await env.drain()
    assert len(await _enrolled(env, subject)) == 1
    assert await _enrolled(env, other) == []


async def test_a_stopped_treatment_in_a_transaction_bundle_enrols(env: EventEnv) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111", "resource": patient("mrn-7"),
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:test:mrn|mrn-7"}},
            {"resource": {
                "resourceType": "MedicationRequest", "status": "stopped", "intent": "order",
                "statusReason": {"coding": [{"system": "http://snomed.info/sct", "code": "266721009"}]},
                "medicationCodeableConcept": {"text": "cisplatin"},
                "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}},
             "request": {"method": "POST", "url": "MedicationRequest"}},
        ],
    }  # fmt: skip
    await env.send(cloud_event(bundle))
    await env.drain()
    patients = await env.search("Patient", identifier="urn:test:mrn|mrn-7")
    assert len(patients) == 1
    assert len(await _enrolled(env, f"Patient/{patients[0]['id']}")) == 1


async def test_an_inactive_pathway_is_not_triggered(env: EventEnv) -> None:
    [plan] = await env.search("PlanDefinition", url=PATHWAY_URL)
    async with env.repository.transaction() as tx:
        await tx.update("PlanDefinition", plan["id"], {**plan, "status": "retired"})
    subject = f"Patient/{(await env.create(patient()))['id']}"
    await env.send(cloud_event(disease_status(subject)))
    await env.drain()
    assert await _enrolled(env, subject) == []
