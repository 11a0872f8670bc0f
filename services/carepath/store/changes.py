"""The delivery change feed: one `delivery_change` row per CarePlan or Task version, in the writing transaction.

Written by the store itself (every write path — REST, Bundles, `$apply`, events, workflow — goes through
`StoreTransaction`), so a change that committed always has its row, and a rolled-back one never does. The rows
of one transaction share a `batch` id (one transaction Bundle when pushed to the hospital). Deletions are not
fed: there is no content to match or send.

Nobody to feed, no rows: while no Subscription exists (other than `off` ones) and this process pushes to no
hospital (`always`), the rows are not written, so neither the write path nor the fan-out pays for a feed nobody
reads. Whether a Subscription exists is asked by the write statements themselves (`SUBSCRIBED`, returned by the
resource INSERT/UPDATE of the same transaction: pending.py, repository.py), never cached, so it is as true as any
read of that transaction, whichever process created the Subscription: a Subscription committed before a write's
statement sees the write fed, as when the fan-out found it active.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath.store.records import StoredResource
from carepath.store.schema import delivery_change, subscription_state

FED_TYPES = frozenset({"CarePlan", "Task"})
_INSERT = insert(delivery_change)
# Returned by the statements that write resource rows: does any Subscription that is not off exist right now?
SUBSCRIBED = exists().where(subscription_state.c.status != "off").label("subscribed")


@dataclass
class ChangeWrites:
    always: bool = True  # feed every change: this process pushes to a hospital (CAREPATH_EHR_BASE_URL)
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _batch: str = field(default_factory=lambda: str(uuid.uuid4()))
    _subscribed: bool = False  # the latest SUBSCRIBED answer of this transaction's write statements

    def add(self, stored: StoredResource) -> None:
        if stored.res_type in FED_TYPES and not stored.deleted:
            self._rows.append({"batch": self._batch, "res_type": stored.res_type, "res_id": stored.res_id,
                               "version": stored.version, "created": stored.last_updated})  # fmt: skip

    def observe(self, subscribed: bool | None) -> None:
        """What a write statement returned as SUBSCRIBED (None: it wrote no resource row)."""
        if subscribed is not None:
            self._subscribed = subscribed

    def discard(self) -> None:
        self._rows = []

    async def flush(self, conn: AsyncConnection) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            if self.always or self._subscribed:
                await conn.execute(_INSERT, rows)
