"""The delivery change feed: one `delivery_change` row per CarePlan or Task version, in the writing transaction.

Written by the store itself (every write path — REST, Bundles, `$apply`, events, workflow — goes through
`StoreTransaction`), so a change that committed always has its row, and a rolled-back one never does. The rows
of one transaction share a `batch` id (one transaction Bundle when pushed to the hospital). Deletions are not
fed: there is no content to match or send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from carepath.store.records import StoredResource
from carepath.store.schema import delivery_change

FED_TYPES = frozenset({"CarePlan", "Task"})
_INSERT = insert(delivery_change)


@dataclass
class ChangeWrites:
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _batch: str = field(default_factory=lambda: str(uuid.uuid4()))

    def add(self, stored: StoredResource) -> None:
        if stored.res_type in FED_TYPES and not stored.deleted:
            self._rows.append({"batch": self._batch, "res_type": stored.res_type, "res_id": stored.res_id,
                               "version": stored.version, "created": stored.last_updated})  # fmt: skip

    def discard(self) -> None:
        self._rows = []

    async def flush(self, conn: AsyncConnection) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            await conn.execute(_INSERT, rows)
