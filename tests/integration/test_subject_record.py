"""`StoreTransaction.subject_record` on both back ends: the subject and what references it, limited by type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository


@pytest.fixture
async def repository(settings: Settings) -> AsyncIterator[Repository]:
    await upgrade_async(settings.effective_database_url, settings.database_schema)
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        yield Repository(engine)
    finally:
        await engine.dispose()


def _observation(patient: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip


async def test_the_record_is_the_subject_and_what_references_it(repository: Repository) -> None:
    async with repository.transaction() as tx:
        await tx.create({"resourceType": "Patient"}, res_id="p1")
        await tx.create({"resourceType": "Patient"}, res_id="p2")
        kept = await tx.create(_observation("p1"))
        gone = await tx.create(_observation("p1"))
        await tx.create(_observation("p2"))
        task = await tx.create({"resourceType": "Task", "status": "requested", "intent": "order",
                                "for": {"reference": "Patient/p1"}})  # fmt: skip
        condition = await tx.create({"resourceType": "Condition", "subject": {"reference": "Patient/p1"}})
    async with repository.transaction() as tx:
        await tx.delete("Observation", gone.res_id)
    async with repository.reader() as tx:
        everything = await tx.subject_record("Patient/p1")
        observations = await tx.subject_record("Patient/p1", {"Observation"})
        nothing_else = await tx.subject_record("Patient/p1", set())

    def keys(record: list[dict[str, Any]]) -> list[str]:
        return sorted(f"{r['resourceType']}/{r['id']}" for r in record)

    # Each resource once (an Observation has both a `subject` and a `patient` index row), deleted ones never.
    assert keys(everything) == sorted(
        ["Patient/p1", f"Observation/{kept.res_id}", f"Task/{task.res_id}", f"Condition/{condition.res_id}"]
    )
    assert keys(observations) == sorted(["Patient/p1", f"Observation/{kept.res_id}"])
    assert keys(nothing_else) == ["Patient/p1"]  # the subject itself is always part of its record
