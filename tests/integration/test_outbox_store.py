"""The outbox and the processed-event keys in the store (store/outbox.py), on both back ends."""

from __future__ import annotations

import asyncio

import pytest

from carepath import jsonutil
from carepath.domain_events import DomainEvent
from carepath.store import outbox
from carepath.store.repository import Repository

PATIENT = {"resourceType": "Patient", "active": True}


async def _rows(repository: Repository) -> list[outbox.OutboxRow]:
    async with repository.transaction() as tx:
        return await outbox.claim(tx.conn, 100) or []


async def test_an_event_is_stored_with_its_transaction(repository: Repository) -> None:
    async with repository.transaction() as tx:
        stored = await tx.create(PATIENT)
        await tx.add_event(
            DomainEvent("dev.carepath.task.created", stored.relative_url, stored.json(), careplan="CarePlan/1",
                        pathway="http://x|1")
        )  # fmt: skip
    rows = await _rows(repository)
    assert [(r.channel, r.type, r.subject, r.careplan, r.pathway) for r in rows] == [
        ("events", "dev.carepath.task.created", stored.relative_url, "CarePlan/1", "http://x|1")
    ]
    assert jsonutil.loads(rows[0].data)["id"] == stored.res_id


async def test_a_rolled_back_transaction_leaves_no_event(repository: Repository) -> None:
    with pytest.raises(RuntimeError):
        async with repository.transaction() as tx:
            await tx.add_event(DomainEvent("dev.carepath.alert", "Patient/p", {"resourceType": "Task"}))
            await tx.flush()
            raise RuntimeError("abort")
    assert await _rows(repository) == []


async def test_relayed_rows_are_removed_and_ids_grow(repository: Repository) -> None:
    for n in range(3):
        async with repository.transaction() as tx:
            await tx.add_internal_event("dev.carepath.internal.resource-stored", "Patient/p", {"n": n})
    rows = await _rows(repository)
    assert [jsonutil.loads(r.data)["n"] for r in rows] == [0, 1, 2]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    async with repository.transaction() as tx:
        await outbox.remove(tx.conn, [rows[0].id])
    assert [r.id for r in await _rows(repository)] == [r.id for r in rows[1:]]


async def test_ids_are_never_reused_after_the_outbox_empties(repository: Repository) -> None:
    async def one() -> int:
        async with repository.transaction() as tx:
            await tx.add_internal_event("dev.carepath.internal.resource-stored", "Patient/p", {})
        [row] = await _rows(repository)
        async with repository.transaction() as tx:
            await outbox.remove(tx.conn, [row.id])
        return row.id

    first = await one()
    assert await one() > first  # a reused id would make consumers drop the new event as a duplicate


async def test_a_processed_key_is_recorded_once(repository: Repository) -> None:
    async with repository.transaction() as tx:
        assert await tx.record_processed("src#1") is True
        assert await tx.record_processed("src#1") is False  # the same transaction still works afterwards
        assert await tx.record_processed("src#2") is True
    async with repository.transaction() as tx:
        assert await tx.record_processed("src#1") is False


async def test_a_rolled_back_key_can_be_recorded_again(repository: Repository) -> None:
    with pytest.raises(RuntimeError):
        async with repository.transaction() as tx:
            assert await tx.record_processed("src#9")
            raise RuntimeError("abort")
    async with repository.transaction() as tx:
        assert await tx.record_processed("src#9")


async def test_concurrent_claims_of_one_key_give_one_winner(repository: Repository) -> None:
    async def attempt() -> bool:
        async with repository.transaction() as tx:
            return await tx.record_processed("src#race")

    assert sorted(await asyncio.gather(attempt(), attempt(), attempt())) == [False, False, True]
