"""`StoreTransaction.subject_record` on both back ends: the subject and what references it, limited by type."""

from __future__ import annotations

from typing import Any

from carepath.store.repository import Repository


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
