"""The repository: every read and write of FHIR resources, one SQLAlchemy code path for SQLite and PostgreSQL.

A write stores the current version, its history row and its search-index rows in one transaction; callers group
several writes (a transaction Bundle, a persisted $apply) by doing them inside one `Repository.transaction()`.
A unit of work the database aborts for a concurrent one (deadlock, serialization failure) leaves it as
TransactionConflict, which `service.transactions.run_in_transaction` retries as a whole.
Every resource is validated before it is stored, so nothing invalid is ever written. New rows are batched
(store/pending.py) and sent before the transaction's next read and before its commit.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Executable, Result, Row, bindparam, func, insert, select, tuple_, union_all, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from carepath import jsonutil
from carepath.domain_events import DomainEvent
from carepath.errors import (
    BusinessRuleViolation,
    Gone,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    TransactionConflict,
)
from carepath.fhir.models import is_supported
from carepath.fhir.search.extract import extract_index
from carepath.fhir.search.includes import IncludeSpec
from carepath.fhir.search.query import Criterion, SearchQuery, parse_search
from carepath.fhir.search.rows import IndexRows
from carepath.fhir.validation import validate_resource
from carepath.fhir.versions import version_key
from carepath.store import outbox, overdue
from carepath.store.changes import SUBSCRIBED, ChangeWrites
from carepath.store.database import is_transient, read_only_options
from carepath.store.generations import Generations
from carepath.store.ordered import ordered_page
from carepath.store.pending import PendingWrites
from carepath.store.records import StoredResource, stamp, utc_now
from carepath.store.schema import (
    conditional_key,
    idempotency_key,
    resource,
    resource_history,
    sp_reference,
    sp_token,
    sp_uri,
)
from carepath.store.search_sql import (
    build_bucket_counts,
    build_count,
    build_dates_between,
    build_include,
    build_revinclude,
    build_search,
    index_ordered,
)

_CURRENT = select(resource).where(
    resource.c.res_type == bindparam("res_type"), resource.c.res_id == bindparam("res_id")
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()


def subject_record_statement(subject: str, types: Collection[str] | None = None) -> Executable:
    """The SELECT behind `StoreTransaction.subject_record`: (rid, content) of the subject and what references it."""
    target_type, _, target_id = subject.partition("/")
    own = select(resource.c.rid, resource.c.content).where(
        resource.c.res_type == target_type, resource.c.res_id == target_id, resource.c.deleted.is_(False)
    )
    refs = select(sp_reference.c.rid).where(
        sp_reference.c.param.in_(("patient", "subject")),
        sp_reference.c.target_id == target_id,
        sp_reference.c.target_type == target_type,
    )
    referencing = select(resource.c.rid, resource.c.content).where(
        resource.c.rid.in_(refs if types is None else refs.where(sp_reference.c.res_type.in_(sorted(types)))),
        resource.c.deleted.is_(False),
    )
    return union_all(own, referencing)


def new_id() -> str:
    return str(uuid.uuid4())


class Repository:
    def __init__(self, engine: AsyncEngine, *, feed_always: bool = True) -> None:
        """`feed_always=False`: write the delivery change feed only while a Subscription exists (store/changes.py);
        a process that pushes to a hospital (CAREPATH_EHR_BASE_URL) feeds every change."""
        self.engine = engine
        self.feed_always = feed_always
        self.generations = Generations(engine)  # listens only once a reader asks for them

    async def close(self) -> None:
        await self.generations.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StoreTransaction]:
        """A read-write unit of work: everything inside commits together or not at all."""
        try:
            async with self.engine.begin() as conn:
                tx = StoreTransaction(conn, self.generations, feed_always=self.feed_always)
                yield tx
                await tx.flush()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            raise TransactionConflict("The database aborted this request for a concurrent one") from exc

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[StoreTransaction]:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**read_only_options(self.engine))
            async with conn.begin():
                yield StoreTransaction(conn, self.generations)


class StoreTransaction:
    """The operations, bound to one open database transaction."""

    def __init__(
        self, conn: AsyncConnection, generations: Generations | None = None, *, feed_always: bool = True
    ) -> None:
        self.conn = conn
        self.generations = generations
        self._pending = PendingWrites()
        self._outbox = outbox.OutboxWrites()
        self._changes = ChangeWrites(feed_always)  # CarePlan/Task versions for outbound delivery (store/changes.py)
        # Set by the event consumer: the writes whose triggers it evaluates itself, in this same transaction,
        # instead of queueing them for later evaluation (service/triggering.py).
        self.written: list[StoredResource] | None = None

    async def flush(self) -> None:
        """Send the batched writes (done before every read and before commit)."""
        self._changes.observe(await self._pending.flush(self.conn))
        await self._outbox.flush(self.conn)
        await self._changes.flush(self.conn)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested unit of work: on an exception its writes (batched ones included) are undone, the rest stays."""
        await self.flush()
        mark = len(self.written) if self.written is not None else 0
        try:
            async with self.conn.begin_nested():
                yield
                await self.flush()
        except BaseException:
            self._pending, self._outbox = PendingWrites(), outbox.OutboxWrites()
            self._changes.discard()
            if self.written is not None:
                del self.written[mark:]
            raise

    async def _query(self, stmt: Executable, params: dict[str, Any] | None = None) -> Result[Any]:
        """Every read goes through here, so it sees the transaction's own batched writes."""
        await self.flush()
        return await self.conn.execute(stmt, params)

    async def lock(self, keys: list[tuple[str, str]]) -> None:
        """Row-lock the current rows of these (type, id) resources, in one order for every transaction.

        Two transactions updating the same resources in different orders would each hold a row the other waits
        for (a deadlock, PostgreSQL); locked up front in (type, id) order, the second simply queues. SQLite has
        one writer at a time and no row locks: there the statement is a plain read.
        """
        ordered = sorted(set(keys))
        if ordered:
            where = tuple_(resource.c.res_type, resource.c.res_id).in_(ordered)
            stmt = select(resource.c.rid).where(where).order_by(resource.c.res_type, resource.c.res_id)
            await self._query(stmt.with_for_update())

    # -- reads ---------------------------------------------------------------------------------------------------
    async def _current(self, res_type: str, res_id: str, *, for_update: bool = False) -> Row[Any] | None:
        stmt = _CURRENT_FOR_UPDATE if for_update else _CURRENT
        return (await self._query(stmt, {"res_type": res_type, "res_id": res_id})).first()

    async def read(self, res_type: str, res_id: str) -> StoredResource:
        row = await self._current(res_type, res_id)
        if row is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
        if row.deleted:
            raise Gone(f"{res_type}/{res_id} was deleted (version {row.version})")
        return _stored(row)

    async def vread(self, res_type: str, res_id: str, version: int) -> StoredResource:
        stmt = select(resource_history).where(
            resource_history.c.res_type == res_type,
            resource_history.c.res_id == res_id,
            resource_history.c.version == version,
        )
        row = (await self._query(stmt)).first()
        if row is None:
            raise NotFound(f"{res_type}/{res_id} has no version {version}")
        if row.deleted:
            raise Gone(f"{res_type}/{res_id} version {version} is a deletion")
        return _stored(row)

    async def read_for_update(self, res_type: str, res_id: str) -> StoredResource | None:
        """The current version, locked until the transaction ends (None when absent or deleted), so a check made
        on it (the Task state machine) still holds when the update that follows is written."""
        row = await self._current(res_type, res_id, for_update=True)
        return None if row is None or row.deleted else _stored(row)

    async def read_any(self, res_type: str, res_id: str) -> StoredResource:
        """The current version, deleted or not (history of a deleted resource is still served)."""
        row = await self._current(res_type, res_id)
        if row is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
        return _stored(row)

    async def find_definition(self, res_type: str | None, canonical: str) -> dict[str, Any] | None:
        """The definition with canonical `url` or `url|version` (the highest version when unversioned)."""
        url, _, version = canonical.partition("|")
        urls = select(sp_uri.c.rid).where(sp_uri.c.param == "url", sp_uri.c.value == url)
        versions = select(sp_token.c.rid).where(sp_token.c.param == "version", sp_token.c.code == version)
        stmt = select(resource.c.content).where(resource.c.deleted.is_(False))
        if res_type is not None:  # the index tables' indexes lead with the type: without it they cannot be used
            stmt = stmt.where(resource.c.res_type == res_type)
            urls, versions = urls.where(sp_uri.c.res_type == res_type), versions.where(sp_token.c.res_type == res_type)
        stmt = stmt.where(resource.c.rid.in_(urls))
        if version:
            stmt = stmt.where(resource.c.rid.in_(versions))
        found = [jsonutil.loads(c) for c in (await self._query(stmt)).scalars()]
        if not found:
            return None
        return max(found, key=lambda r: version_key(r.get("version")))  # type: ignore[no-any-return]

    async def find_definitions(
        self, res_types: Collection[str], canonicals: Collection[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Each canonical (`url` or `url|version`) -> its definition among `res_types`, in one query.

        An unversioned canonical gets the highest version; one that matches nothing maps to None.
        """
        urls = sorted({c.partition("|")[0] for c in canonicals})
        if not urls or not res_types:
            return dict.fromkeys(canonicals)
        types = sorted(res_types)
        url_rows = sp_uri.c.res_type.in_(types), sp_uri.c.param == "url", sp_uri.c.value.in_(urls)
        rids = select(sp_uri.c.rid).where(*url_rows)
        stmt = select(resource.c.content).where(
            resource.c.res_type.in_(types), resource.c.deleted.is_(False), resource.c.rid.in_(rids)
        )
        by_url: dict[str, list[dict[str, Any]]] = {}
        for content in (await self._query(stmt)).scalars():
            found = jsonutil.loads(content)
            by_url.setdefault(str(found.get("url")), []).append(found)
        out: dict[str, dict[str, Any] | None] = {}
        for canonical in canonicals:
            url, _, version = canonical.partition("|")
            candidates = [r for r in by_url.get(url, []) if not version or r.get("version") == version]
            out[canonical] = max(candidates, key=lambda r: version_key(r.get("version"))) if candidates else None
        return out

    async def subject_record(self, subject: str, types: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The subject and every current resource whose `patient`/`subject` search parameter points at it.

        `types` (None: every type) limits the referencing resources to those types; the subject itself is always
        included. Written as a UNION of two index paths (the unique key for the subject, the reference index
        for what points at it): as one OR, PostgreSQL can use neither index and scans the whole resource table.
        """
        rows = await self._query(subject_record_statement(subject, types))
        seen: set[int] = set()
        out = []
        for row in rows:
            if row.rid not in seen:  # a resource referencing itself (or the subject twice) comes once
                seen.add(row.rid)
                out.append(jsonutil.loads(row.content))
        return out

    # -- search ----------------------------------------------------------------------------------------------------
    async def search(self, query: SearchQuery) -> list[tuple[int, StoredResource]]:
        sort = index_ordered(query)
        rows = await ordered_page(self._query, query, sort) if sort else None
        if rows is None:
            rows = list(await self._query(build_search(query)))
        return [(row.rid, _stored(row)) for row in rows]

    async def count(self, query: SearchQuery) -> int:
        return int((await self._query(build_count(query))).scalar_one())

    async def bucket_counts(
        self, query: SearchQuery, param: str, buckets: Mapping[str, Sequence[Criterion]]
    ) -> tuple[int, dict[str, int]]:
        """(matches, matches per bucket of the date parameter `param`) in one query (search_sql.build_bucket_counts:
        exact only for a parameter with at most one value per resource)."""
        row = (await self._query(build_bucket_counts(query, param, buckets))).one()
        return int(row.total), {name: int(row._mapping[name]) for name in buckets}

    async def dates_between(self, res_type: str, param: str, start: datetime, end: datetime) -> bool:
        """Whether any index row of this date parameter begins or ends within [start, end]."""
        return (await self._query(build_dates_between(res_type, param, start, end))).first() is not None

    async def related(self, spec: IncludeSpec, rids: list[int], *, reverse: bool) -> list[tuple[int, StoredResource]]:
        """The resources an `_include` (or, reversed, a `_revinclude`) adds for the matched rows."""
        if not rids:
            return []
        stmt = build_revinclude(spec, rids) if reverse else build_include(spec, rids)
        return [(row.rid, _stored(row)) for row in await self._query(stmt)]

    async def conditional_create(self, body: dict[str, Any], criteria: str) -> tuple[StoredResource, bool]:
        """Create unless `criteria` (If-None-Exist) matches: 0 matches -> create, 1 -> that one, more -> 412.

        The normalised criteria are a unique key in `conditional_key`, claimed *before* the create: of two
        concurrent identical requests the second blocks on the key until the first commits, then finds the
        first one's resource instead of creating a duplicate. A key that outlived its match is re-claimed under a
        row lock, so that concurrent re-claimers queue and each searches again once the previous one committed.
        """
        res_type = _checked_type(body)
        query = replace(parse_search(res_type, parse_qsl(criteria, keep_blank_values=True)), count=2, offset=0, sort=())
        if not query.criteria:  # `_count=1` alone would match any resource of the type and store nothing new
            raise InvalidRequest(
                f"If-None-Exist {criteria!r} has no search criteria; name at least one search parameter with a value",
                expression=("If-None-Exist",),
            )
        existing = await self._conditional_match(query, criteria)
        if existing is not None:
            return existing, False
        key = hashlib.sha256("&".join(sorted(f"{k}={v}" for k, v in parse_qsl(criteria))).encode()).hexdigest()
        res_id = new_id()
        where = (conditional_key.c.res_type == res_type, conditional_key.c.query_key == key)
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(conditional_key).values(res_type=res_type, query_key=key, res_id=res_id))
        except IntegrityError:
            # Wait for whoever holds the key; searched only then, their committed resource is seen (READ COMMITTED).
            await self.conn.execute(select(conditional_key.c.res_id).where(*where).with_for_update())
            existing = await self._conditional_match(query, criteria)
            if existing is not None:
                return existing, False
            # The key outlived its match (that resource changed or was deleted): it is ours now.
            await self.conn.execute(update(conditional_key).where(*where).values(res_id=res_id))
        return await self.create({k: v for k, v in body.items() if k != "id"}, res_id=res_id), True

    async def _conditional_match(self, query: SearchQuery, criteria: str) -> StoredResource | None:
        found = await self.search(query)
        if len(found) > 1:
            raise PreconditionFailed(f"If-None-Exist {criteria!r} matches more than one resource")
        return found[0][1] if found else None

    async def idempotent_response(self, key: str, request_hash: str) -> tuple[int, str] | None:
        """The response first given under the client's key, if any; the key reused for another request is refused."""
        row = (await self._query(select(idempotency_key).where(idempotency_key.c.key == key))).first()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise BusinessRuleViolation(
                "This Idempotency-Key was already used for a different request; use a new key for a new request"
            )
        return row.status, row.body

    async def remember_response(self, key: str, request_hash: str, status: int, body: str) -> None:
        """Store the response under the client's key; a concurrent duplicate fails here on the unique key."""
        await self.conn.execute(
            insert(idempotency_key).values(
                key=key, created=utc_now(), status=status, body=body, request_hash=request_hash
            )
        )

    async def history(
        self, res_type: str | None, res_id: str | None, *, since: datetime | None, count: int, offset: int
    ) -> tuple[list[StoredResource], int]:
        """Versions newest first (instance, type or whole-system history) and how many there are in all."""
        where = []
        if res_type is not None:
            where.append(resource_history.c.res_type == res_type)
        if res_id is not None:
            where.append(resource_history.c.res_id == res_id)
        if since is not None:
            where.append(resource_history.c.last_updated >= since)
        total = (await self._query(select(func.count()).select_from(resource_history).where(*where))).scalar_one()
        stmt = (
            select(resource_history)
            .where(*where)
            .order_by(resource_history.c.last_updated.desc(), resource_history.c.version.desc())
            .limit(count)
            .offset(offset)
        )
        return [_stored(r) for r in (await self._query(stmt))], int(total)

    # -- events ----------------------------------------------------------------------------------------------------
    async def add_event(self, event: DomainEvent) -> None:
        """Queue an outbound event: an outbox row written with this transaction (store/outbox.py), so it is
        published if and only if the transaction commits."""
        self._outbox.add_event(event)

    async def add_internal_event(self, type_: str, subject: str, data: dict[str, Any]) -> None:
        """Queue an internal event (relayed to the inbound stream for trigger evaluation) with this transaction."""
        self._outbox.add(outbox.INTERNAL, type_, subject, data)

    async def record_processed(self, key: str) -> bool:
        """Record an inbound event's idempotency key in this transaction; False if it was already processed."""
        await self.flush()
        return await outbox.record_processed(self.conn, key)

    async def scheduler_turn(self) -> bool:
        """Whether this transaction may run the scheduler's scan now (one scheduler at a time)."""
        await self.flush()
        return await overdue.scheduler_turn(self.conn)

    async def claim_overdue_alert(self, task_id: str, due: str) -> bool:
        """Record the overdue alert of `task_id` for `due`; False when it was raised already (store/overdue.py)."""
        await self.flush()
        return await overdue.claim_alert(self.conn, task_id, due, utc_now())

    async def lock_patient(self, subject: str) -> None:
        """Serialise this transaction with every other one of this patient until it ends (PostgreSQL)."""
        await outbox.lock_patients(self.conn, {subject})

    # -- writes --------------------------------------------------------------------------------------------------
    async def create(
        self, body: dict[str, Any], *, res_id: str | None = None, validated: bool = False
    ) -> StoredResource:
        """Store a new resource; the server assigns the id unless `res_id` is given (create-on-update).

        The row is written with the transaction's next flush; a clash with a concurrent create-on-update of the
        same id surfaces there as Conflict. `validated=True` is for resources the server builds itself from a
        fixed shape its tests validate (the audit trail's AuditEvents): validation is most of a write's CPU.
        """
        res_type = _checked_type(body)
        if not validated:
            validate_resource(body)
        res_id = res_id or new_id()
        moment = utc_now()
        content = _content(stamp(body, res_id, 1, moment))
        stored = StoredResource(res_type, res_id, 1, moment, False, content)
        self._pending.add_resource(stored, extract_index(jsonutil.loads(content)))
        self._changes.add(stored)
        return stored

    async def update(
        self, res_type: str, res_id: str, body: dict[str, Any], *, if_match: int | None = None
    ) -> tuple[StoredResource, bool]:
        """FHIR update: a new version, or create-on-update with the client's id. Returns (stored, created)."""
        if body.get("resourceType") != res_type:
            raise InvalidRequest(
                f"The body is a {body.get('resourceType')}, the URL says {res_type}", expression=("resourceType",)
            )
        if body.get("id") != res_id:
            raise InvalidRequest(
                f"The body's id {body.get('id')!r} must equal the URL's id {res_id!r}", expression=(f"{res_type}.id",)
            )
        current = await self._current(res_type, res_id, for_update=True)
        if current is None:
            if if_match is not None:
                raise PreconditionFailed(f"{res_type}/{res_id} does not exist (If-Match {if_match})")
            return await self.create(body, res_id=res_id), True
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(f"{res_type}/{res_id} is at version {current.version}, not {if_match} (If-Match)")
        validate_resource(body)
        stored = await self._new_version(current, body, "PUT")
        return stored, current.deleted

    async def delete(self, res_type: str, res_id: str) -> StoredResource | None:
        """FHIR delete; deleting what is absent or already deleted is not an error (returns None)."""
        current = await self._current(res_type, res_id, for_update=True)
        if current is None or current.deleted:
            return None
        return await self._new_version(current, None, "DELETE")

    async def _new_version(self, current: Row[Any], body: dict[str, Any] | None, method: str) -> StoredResource:
        version, moment = current.version + 1, utc_now()
        content = None if body is None else _content(stamp(body, current.res_id, version, moment))
        written = await self.conn.execute(
            update(resource)
            .where(resource.c.rid == current.rid)
            .values(version=version, last_updated=moment, deleted=body is None, content=content)
            .returning(SUBSCRIBED)
        )
        self._changes.observe(bool(written.scalar_one()))
        stored = StoredResource(current.res_type, current.res_id, version, moment, body is None, content)
        self._pending.add_version(current.rid, stored, method, _index_of(content), _index_of(current.content))
        self._changes.add(stored)
        return stored


def _index_of(content: str | None) -> IndexRows:
    """The index rows of stored content. For the previous version these are exactly the rows stored for it
    (the same extraction wrote them), which tells which index tables need a DELETE at all."""
    return IndexRows() if content is None else extract_index(jsonutil.loads(content))


def _checked_type(body: dict[str, Any]) -> str:
    res_type = body.get("resourceType")
    if not isinstance(res_type, str) or not is_supported(res_type):
        raise InvalidRequest(
            f"Resource type {res_type!r} is not supported by this server", expression=("resourceType",)
        )
    return res_type


def _content(body: dict[str, Any]) -> str:
    return jsonutil.dumps(body).decode()


def _stored(row: Row[Any]) -> StoredResource:
    return StoredResource(row.res_type, row.res_id, row.version, row.last_updated, row.deleted, row.content)
