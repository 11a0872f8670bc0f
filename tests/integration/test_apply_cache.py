"""The pre-loaded definitions cache of `$apply` (service level, SQLite and PostgreSQL): applying never changes the
cached definitions, a new PlanDefinition version gets a fresh entry, and unpinned references are not cached."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from apply_support import ASSESS, INFORM, PLAN_URL, REFER, canonical, ecog_observation, pathway
from sqlalchemy import event

from carepath.service.apply import apply_plan
from carepath.service.apply_definitions import stored_definitions
from carepath.service.parameters import OperationInput
from carepath.store.repository import Repository

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


async def _store(repository: Repository, *resources: dict[str, object]) -> list[str]:
    async with repository.transaction() as tx:
        return [(await tx.create(dict(resource))).res_id for resource in resources]


async def _apply(repository: Repository, plan_id: str, patient_id: str) -> None:
    inputs = OperationInput({"subject": [f"Patient/{patient_id}"]})
    response = await apply_plan(repository, plan_id, inputs, idempotency_key=None, now=NOW)
    assert response.body["resourceType"] == "CarePlan"


async def test_applying_leaves_the_cached_definitions_as_stored(repository: Repository) -> None:
    """A dynamicValue on a nested path of the generated request must not write into the cached definition."""
    plan = pathway()
    plan["action"][0]["dynamicValue"] = [{"path": "code.coding[0].display", "expression": {
        "language": "text/fhirpath", "expression": "'reassess ' + %subject.id"}}]  # fmt: skip
    ids = await _store(repository, ASSESS, REFER, INFORM, plan, {"resourceType": "Patient"})
    await _store(repository, ecog_observation(ids[-1], 3))
    for _ in range(2):
        await _apply(repository, ids[3], ids[-1])
    async with repository.reader() as tx:
        cached = await stored_definitions(repository, tx, "PlanDefinition", ids[3])
        stored_assess = (await tx.read("ActivityDefinition", ids[0])).json()
        stored_plan = (await tx.read("PlanDefinition", ids[3])).json()
        again = await stored_definitions(repository, tx, "PlanDefinition", ids[3])
    assert again is cached  # the same entry: the second call read nothing more
    assert cached.resolver.resolve(canonical(ASSESS)) == stored_assess
    assert cached.root == stored_plan


async def test_a_new_plan_version_is_a_new_entry(repository: Repository) -> None:
    ids = await _store(repository, ASSESS, REFER, INFORM, pathway())
    async with repository.transaction() as tx:
        first = await stored_definitions(repository, tx, "PlanDefinition", ids[3])
        edited = copy.deepcopy(first.root)
        edited["title"] = "Edited"
        await tx.update("PlanDefinition", ids[3], edited)
    async with repository.reader() as tx:
        second = await stored_definitions(repository, tx, "PlanDefinition", ids[3])
    assert second.root["title"] == "Edited"
    assert second.version_reference == f"PlanDefinition/{ids[3]}/_history/2"


async def test_unpinned_references_are_resolved_on_every_call(repository: Repository) -> None:
    """`definitionCanonical` without `|version` means the newest: a version loaded later must be used."""
    plan = pathway()
    plan["action"] = [{**plan["action"][0], "definitionCanonical": ASSESS["url"]}]
    ids = await _store(repository, ASSESS, plan)
    async with repository.reader() as tx:
        first = await stored_definitions(repository, tx, "PlanDefinition", ids[1])
    await _store(repository, {**ASSESS, "version": "1.1.0"})
    async with repository.reader() as tx:
        second = await stored_definitions(repository, tx, "PlanDefinition", ids[1])
    assert first.resolver.resolve(ASSESS["url"])["version"] == "1.0.0"  # type: ignore[index]
    assert second.resolver.resolve(ASSESS["url"])["version"] == "1.1.0"  # type: ignore[index]
    assert second.root["url"] == PLAN_URL


async def test_unpinned_references_are_resolved_in_one_query(repository: Repository) -> None:
    """Three unpinned canonicals (one unknown): one SELECT on the url index, each resolved to its newest version."""
    plan = pathway()
    plan["action"] = [{**action, "definitionCanonical": definition["url"]}
                      for action, definition in zip(plan["action"], (ASSESS, REFER, INFORM), strict=True)]  # fmt: skip
    plan["action"][2]["definitionCanonical"] = f"{INFORM['url']}-unknown"
    ids = await _store(repository, ASSESS, {**ASSESS, "version": "1.1.0"}, REFER, plan)
    statements: list[str] = []

    def listener(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    event.listen(repository.engine.sync_engine, "before_cursor_execute", listener)
    try:
        async with repository.reader() as tx:
            definitions = await stored_definitions(repository, tx, "PlanDefinition", ids[3])
    finally:
        event.remove(repository.engine.sync_engine, "before_cursor_execute", listener)
    assert len([s for s in statements if "sp_uri" in s]) == 1
    assert definitions.resolver.resolve(ASSESS["url"])["version"] == "1.1.0"  # type: ignore[index]
    assert definitions.resolver.resolve(REFER["url"]) is not None
    assert definitions.resolver.resolve(f"{INFORM['url']}-unknown") is None
