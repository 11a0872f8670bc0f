"""The fan-out: committed change rows -> numbered Subscription notifications and hospital pushes, in one
transaction that also deletes the change rows (store/delivery.py says why nothing is lost or numbered twice).

A change matches a Subscription when its version is among the results of the Subscription's criteria, evaluated by
the server's own search SQL against that version alone (store/probe.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from carepath import jsonutil
from carepath.errors import CarepathError
from carepath.fhir.search.query import SearchQuery
from carepath.service.subscription_rules import parse_criteria
from carepath.settings import Settings
from carepath.store import delivery
from carepath.store.probe import SearchProbe
from carepath.store.records import utc_now
from carepath.store.repository import Repository

log = logging.getLogger("carepath.delivery")


async def fanout_once(repository: Repository, probe: SearchProbe, settings: Settings) -> int:
    """Fan out one batch of changes; how many change rows were handled (0: none, or another fan-out runs)."""
    async with repository.transaction() as tx:
        changes = await delivery.claim_changes(tx.conn, settings.delivery_batch)
        if not changes:
            return 0
        now = utc_now()
        subs = [(s, q) for s in await delivery.states(tx.conn, delivery.NOTIFYING) if (q := _query(s)) is not None]
        counters = {s.id: s.events for s, _ in subs}
        notes: list[dict[str, Any]] = []
        for change in changes:
            typed = [(s, q) for s, q in subs if q.resource_type == change.stored.res_type]
            for (sub, _), hit in zip(typed, probe.matches(change.stored, [q for _, q in typed]), strict=True):
                if hit:
                    counters[sub.id] += 1
                    notes.append({
                        "subscription_id": sub.id, "event_number": counters[sub.id],
                        "notification_id": str(uuid.uuid4()), "res_type": change.stored.res_type,
                        "res_id": change.stored.res_id, "version": change.stored.version, "status": "pending",
                        "attempts": 0, "due": now, "last_error": None, "created": now, "sent": None,
                    })  # fmt: skip
        changed = {s.id: counters[s.id] for s, _ in subs if counters[s.id] != s.events}
        await delivery.finish_fanout(tx.conn, [c.id for c in changes], notes, changed, _pushes(changes, settings))
    return len(changes)


def _query(state: delivery.State) -> SearchQuery | None:
    try:
        return parse_criteria(state.criteria)
    except CarepathError as exc:  # accepted once, but no longer understood (e.g. a parameter withdrawn)
        log.warning("Subscription/%s: criteria not evaluated: %s", state.id, exc.diagnostics)
        return None


def _pushes(changes: list[delivery.Change], settings: Settings) -> list[dict[str, Any]]:
    """One push per writing transaction (its changes travel as one transaction Bundle), when a hospital is set."""
    if not settings.ehr_base_url:
        return []
    batches: dict[str, list[str]] = {}
    for change in changes:
        refs = batches.setdefault(change.batch, [])
        if change.stored.relative_url not in refs:
            refs.append(change.stored.relative_url)
    now = utc_now()
    return [
        {"batch": batch, "refs": jsonutil.dumps(refs).decode(), "status": "pending", "attempts": 0, "conflicts": 0,
         "due": now, "lease_until": None, "last_error": None, "created": now}
        for batch, refs in batches.items()
    ]  # fmt: skip
