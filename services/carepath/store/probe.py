"""Does one resource version match a search? The server's own search SQL, run against that version alone.

A Subscription's `criteria` is a FHIR search; a notification is due when the changed version matches it. The
database's index rows describe only the *current* version, and a resource may have changed again before the
fan-out looks at it, so matching against the database could answer for the wrong version. Instead the version's
index rows (the same `extract_index` the store writes) go into a private in-memory SQLite database holding only
that version, and the very same `build_search` statement runs there: one search implementation, exact per version.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, create_engine, insert
from sqlalchemy.pool import StaticPool

from carepath import jsonutil
from carepath.fhir.search.extract import extract_index
from carepath.fhir.search.query import SearchQuery
from carepath.store.pending import INDEX_TABLES
from carepath.store.records import StoredResource
from carepath.store.schema import metadata, resource
from carepath.store.search_sql import build_search


class SearchProbe:
    """One in-memory database per process user; each probe inserts the version, searches, rolls back."""

    def __init__(self) -> None:
        self._engine = create_engine("sqlite://", poolclass=StaticPool)
        metadata.create_all(self._engine, tables=[resource, *INDEX_TABLES.values()])

    def matches(self, stored: StoredResource, queries: list[SearchQuery]) -> list[bool]:
        """For each query (of the version's type), whether the version is among its matches."""
        if not queries or stored.content is None:
            return [False] * len(queries)
        with self._engine.connect() as conn, conn.begin() as tx:
            self._insert(conn, stored)
            found = [self._found(conn, query) for query in queries]
            tx.rollback()
        return found

    @staticmethod
    def _insert(conn: Connection, stored: StoredResource) -> None:
        row = {"rid": 1, "res_type": stored.res_type, "res_id": stored.res_id, "version": stored.version,
               "last_updated": stored.last_updated, "deleted": False, "content": stored.content}  # fmt: skip
        conn.execute(insert(resource), row)
        index = extract_index(jsonutil.loads(stored.content or "{}"))
        for name, table in INDEX_TABLES.items():
            rows = [{"rid": 1, "res_type": stored.res_type, **vars(r)} for r in getattr(index, name)]
            if rows:
                conn.execute(insert(table), rows)

    @staticmethod
    def _found(conn: Connection, query: SearchQuery) -> bool:
        one = replace(query, count=1, offset=0, sort=())
        return conn.execute(build_search(one)).first() is not None
