"""`carepath demo`: the whole flow on embedded defaults, for a first look.

Loads the shipped pathways, stores the spec's sample patients, applies the chemotherapy-failure pathway to each
with `persist=true` (through the same service functions the API uses), and prints what every patient got; then
completes one patient's Task and shows the Task that waited for it released (demo_release.py).
Re-running it on the same day changes nothing: patients are upserted and each apply carries an Idempotency-Key.

Then one event-driven enrolment: an integration engine's CloudEvent (a transaction Bundle with a new patient and
a "disease worsened" status) goes onto the inbound stream, and the worker duties — consumer and outbox relay,
here on the in-process Redis substitute unless CAREPATH_REDIS_URL is set — store it, start the pathway once and
publish what changed on the outbound stream. Its CloudEvents id is per day, so a re-run is a duplicate.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

from carepath import jsonutil
from carepath.canonical import BASE
from carepath.content.samples import NEGATIVES, SCENARIOS, PatientCase
from carepath.content.summary import render_summary, summarise
from carepath.demo_release import show_release
from carepath.demo_worklist import add_worklist_examples
from carepath.fhir.search.query import parse_search
from carepath.service.apply import apply_plan
from carepath.service.bundles import run_transaction
from carepath.service.parameters import OperationInput
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

PATHWAY_URL = f"{BASE}/PlanDefinition/chemo-failure-follow-up"
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"


async def run_demo(settings: Settings) -> int:
    started = time.perf_counter()
    url = settings.effective_database_url
    await upgrade_async(url, settings.database_schema)
    engine = create_engine(url, schema=settings.database_schema)
    try:
        repository = Repository(engine)
        pathways = settings.effective_pathways_dir
        report = await load_pathways(repository, pathways)
        print(f"carepath demo — database {url}\npathways from {pathways}/: {report.summary()}\n")
        async with repository.reader() as tx:
            plan = await tx.find_definition("PlanDefinition", PATHWAY_URL)
        if plan is None:
            print(f"The pathway {PATHWAY_URL} is not among the loaded definitions.")
            return 1
        now = datetime.now(UTC)
        for case in (*SCENARIOS, NEGATIVES[0]):
            await _store_patient(repository, case, now)
            print(await _apply_and_describe(repository, plan, case, now))
        print(await show_release(repository, f"Patient/{SCENARIOS[0].key}"))
        print(await _event_driven_enrolment(repository, settings, now))
        print(await add_worklist_examples(repository, now))
    finally:
        await engine.dispose()
    print(f"Done in {time.perf_counter() - started:.1f} s. Next: `carepath serve`, then open the worklist "
          "http://127.0.0.1:8000/app, the worklist query "
          "http://127.0.0.1:8000/fhir/Task?status=requested,ready&_sort=due-date "
          "or http://127.0.0.1:8000/docs for the API.")  # fmt: skip
    return 0


async def _store_patient(repository: Repository, case: PatientCase, now: datetime) -> None:
    """Upsert the sample record, so a re-run does not duplicate patients."""
    async with repository.transaction() as tx:
        await run_transaction(tx, case.upsert(now)["entry"], "")


def _demo_event(now: datetime) -> dict[str, Any]:
    patient = "urn:uuid:5e1f3c2a-7d4b-4c8e-9a61-0d2b8f4e7c10"
    mrn = {"system": "urn:example:mrn", "value": "DEMO-EVENT-1"}
    status = {"resourceType": "Observation", "status": "final", "identifier": [{"system": "urn:example:ris",
              "value": f"restaging-{now.date().isoformat()}"}],
              "code": {"coding": [{"system": LOINC, "code": "97509-4"}]}, "subject": {"reference": patient},
              "effectiveDateTime": now.replace(microsecond=0).isoformat(),
              "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "271299001"}]}}  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "resource": {"resourceType": "Patient", "identifier": [mrn]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={mrn['system']}|{mrn['value']}"}},
        {"resource": status, "request": {"method": "POST", "url": "Observation"}}]}  # fmt: skip
    return {
        "specversion": "1.0",
        "id": f"demo-{now.date().isoformat()}",
        "source": "urn:example:integration-engine",
        "type": "dev.carepath.fhir.resource",
        "datacontenttype": "application/fhir+json",
        "data": bundle,
    }


async def _event_driven_enrolment(repository: Repository, settings: Settings, now: datetime) -> str:
    from carepath.events.consumer import Consumer
    from carepath.events.relay import relay_all
    from carepath.events.shards import route
    from carepath.events.streams import Entry, connect

    streams = connect(settings)
    try:
        consumer = Consumer(repository, streams)
        await consumer.setup()
        await relay_all(repository, streams)  # the sample patients' HTTP-door events go first
        raw = jsonutil.dumps(_demo_event(now))
        await streams.redis.xadd(route(settings, raw).stream, {"event": raw})
        for _ in range(100):
            await relay_all(repository, streams)
            if not await consumer.step():
                break
        await relay_all(repository, streams)
        published = cast(list[Entry], await streams.redis.xrange(settings.events_outbound_stream))
    finally:
        await streams.close()
    async with repository.reader() as tx:
        [patient] = await tx.search(parse_search("Patient", [("identifier", "urn:example:mrn|DEMO-EVENT-1")]))
        subject = patient[1].relative_url
        careplans = [c for _, c in await tx.search(parse_search("CarePlan", [("subject", subject)]))]
        tasks = await tx.count(parse_search("Task", [("subject", subject)]))
    events = [jsonutil.loads(fields[b"event"]) for _, fields in published]
    kinds = Counter(e["type"] for e in events if e["subject"] == subject)
    told = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing new (today's event was handled before)"
    return (
        f"Event-driven enrolment: a CloudEvent on {settings.events_inbound_stream} (a restaging 'disease worsened'"
        f" for a new patient) -> {subject}: {len(careplans)} CarePlan, {tasks} Tasks; published on "
        f"{settings.events_outbound_stream}: {told}\n"
    )


async def _apply_and_describe(repository: Repository, plan: dict[str, Any], case: PatientCase, now: datetime) -> str:
    subject = {"subject": [f"Patient/{case.key}"]}
    key = f"demo-{case.key}-{now.date().isoformat()}"
    response = await apply_plan(repository, plan["id"], OperationInput({**subject, "persist": [True]}),
                                idempotency_key=key, now=now)  # fmt: skip
    stored = f"CarePlan/{response.body['id']}" if response.body.get("resourceType") == "CarePlan" else "nothing stored"
    if not response.results:  # applied earlier today: the stored answer was replayed; show the same plan again
        response = await apply_plan(repository, plan["id"], OperationInput(subject), idempotency_key=None, now=now)
    result = response.results[0]
    return render_summary(f"{case.key}  {case.title}  ->  {stored}", result.applicable, summarise(result, plan))
