"""`carepath demo`: the whole flow on embedded defaults, for a first look.

Loads the shipped pathways, stores the spec's sample patients, applies the chemotherapy-failure pathway to each
with `persist=true` (through the same service functions the API uses), and prints what every patient got; then
completes one patient's Task and shows the Task that waited for it released (demo_release.py).
Re-running it on the same day changes nothing: patients are upserted and each apply carries an Idempotency-Key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from carepath.canonical import BASE
from carepath.content.samples import NEGATIVES, SCENARIOS, PatientCase
from carepath.content.summary import render_summary, summarise
from carepath.demo_release import show_release
from carepath.service.apply import apply_plan
from carepath.service.bundles import run_transaction
from carepath.service.parameters import OperationInput
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

PATHWAY_URL = f"{BASE}/PlanDefinition/chemo-failure-follow-up"


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
    finally:
        await engine.dispose()
    print(f"Done in {time.perf_counter() - started:.1f} s. Next: `carepath serve`, then open "
          "http://127.0.0.1:8000/fhir/Task?status=requested,ready&_sort=due-date (the worklist query) "
          "or http://127.0.0.1:8000/docs for the API.")  # fmt: skip
    return 0


async def _store_patient(repository: Repository, case: PatientCase, now: datetime) -> None:
    """Upsert the sample record, so a re-run does not duplicate patients."""
    async with repository.transaction() as tx:
        await run_transaction(tx, case.upsert(now)["entry"], "")


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
