"""The database schema (SQLAlchemy Core). Alembic migrations in store/migrations mirror it.

resource          current version of every resource (deleted ones stay, flagged, so a read can answer 410)
resource_history  every version ever written (the _history interactions read it)
sp_*              search-index rows of the *current* version, keyed by resource.rid
conditional_key   unique (type, normalised If-None-Exist query): the database, not a search, stops duplicates
idempotency_key   unique client keys for retried operations ($apply with Idempotency-Key)
outbox            events written in the transaction of the change; the relay publishes then deletes them
processed_event   unique keys of handled inbound events (CloudEvents source + id): a redelivery has no effect
overdue_alert     unique (Task id, due date): the overdue alert of a Task for one due date is raised once
All datetimes are naive UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

RowId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY

resource = Table(
    "resource",
    metadata,
    Column("rid", RowId, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime(), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),
    UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "res_type", "last_updated"),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("rid", RowId, ForeignKey("resource.rid", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("last_updated", DateTime(), nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=True),
    Index("ix_history_type_updated", "res_type", "last_updated"),
    Index("ix_history_updated", "last_updated"),
)


def _index_table(
    name: str, *columns: Column[object], indexes: list[tuple[str, ...]], by_rid: tuple[str, ...] = ()
) -> Table:
    """An index table; `by_rid` extends the rid index so that per-resource probes of a search (EXISTS on one
    parameter, the sort key) are answered from the index alone."""
    table = Table(
        name,
        metadata,
        Column("rid", RowId, ForeignKey("resource.rid", ondelete="CASCADE"), nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
    )
    Index(f"ix_{name}_{'_'.join(('rid', *by_rid))}", *(table.c[c] for c in ("rid", *by_rid)))
    for cols in indexes:
        Index(f"ix_{name}_{'_'.join(cols)}", *(table.c[c] for c in cols))
    return table


sp_token = _index_table(
    "sp_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    indexes=[("res_type", "param", "code", "rid")],
    by_rid=("res_type", "param", "code"),
)
sp_string = _index_table(
    "sp_string",
    Column("value", String(512), nullable=False),
    Column("exact", String(512), nullable=False),  # as written, for :exact; `value` is the normalised form
    indexes=[("res_type", "param", "value")],
)
sp_date = _index_table(
    "sp_date",
    Column("low", DateTime(), nullable=False),
    Column("high", DateTime(), nullable=False),
    indexes=[("res_type", "param", "low"), ("res_type", "param", "high")],
    by_rid=("res_type", "param", "low", "high"),
)
sp_reference = _index_table(
    "sp_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(512), nullable=True),
    Column("version", String(64), nullable=True),
    indexes=[("res_type", "param", "target_id", "target_type", "rid"), ("res_type", "param", "url"), ("target_id",)],
)
sp_quantity = _index_table(
    "sp_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(64), nullable=True),
    indexes=[("res_type", "param", "value")],
)
sp_uri = _index_table(
    "sp_uri",
    Column("value", String(512), nullable=False),
    indexes=[("res_type", "param", "value")],
)

conditional_key = Table(
    "conditional_key",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("query_key", String(128), primary_key=True),  # sha256 of the normalised query
    Column("res_id", String(64), nullable=False),
)

idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("key", String(255), primary_key=True),  # scope + client key
    Column("created", DateTime(), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("request_hash", String(64), nullable=True),  # sha256 of the request the key answered
)

outbox = Table(
    "outbox",
    metadata,
    # The id orders the rows (per patient it is the commit order, see store/outbox.py) and is the CloudEvents id.
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("created", DateTime(), nullable=False),
    Column("channel", String(16), nullable=False),  # "events" (outbound stream) or "internal" (trigger evaluation)
    Column("type", String(64), nullable=False),
    Column("subject", String(128), nullable=True),  # "Patient/<id>"
    Column("careplan", String(128), nullable=True),
    Column("pathway", String(512), nullable=True),
    Column("data", Text, nullable=False),  # JSON: the CloudEvents data
    # Ids are never reused, even once every row is relayed and deleted: SQLite would otherwise restart at
    # max(id) + 1, and a consumer de-duplicating by CloudEvents id would drop a new event as a repeat.
    sqlite_autoincrement=True,
)

processed_event = Table(
    "processed_event",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("processed", DateTime(), nullable=False),
    Index("ix_processed_event_processed", "processed"),  # purge by age
)

overdue_alert = Table(
    "overdue_alert",
    metadata,
    # The key is the fact "alerted": whichever scheduler inserts it first raises the alert, any other skips it.
    Column("task_id", String(64), primary_key=True),
    Column("due", String(64), primary_key=True),  # Task.restriction.period.end as written
    Column("alerted", DateTime(), nullable=False),
)

# -- outbound delivery (Subscriptions, push to the hospital's FHIR server; store/delivery.py) ----------------------
delivery_change = Table(
    "delivery_change",
    metadata,
    # Written in the transaction of every CarePlan/Task version; the delivery fan-out turns it into notifications
    # and pushes, then deletes it. Per resource the ids follow the version order (the resource row lock).
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("batch", String(36), nullable=False),  # one per writing transaction: one transaction Bundle to the EHR
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", DateTime(), nullable=False),
    sqlite_autoincrement=True,
)

subscription_state = Table(
    "subscription_state",
    metadata,
    # The delivery side of a Subscription resource: what the worker reads, and the write-only header values.
    Column("id", String(64), primary_key=True),  # the Subscription's id
    Column("status", String(16), nullable=False),  # requested | active | error | off (mirrors the resource)
    Column("criteria", Text, nullable=False),
    Column("endpoint", String(1024), nullable=False),
    Column("payload", String(64), nullable=True),
    Column("headers", Text, nullable=False),  # JSON list of "Name: value" (never stored in the resource)
    Column("end", DateTime(), nullable=True),
    Column("events", Integer, nullable=False),  # the last event number given out
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),  # failed handshakes in a row
    Column("due", DateTime(), nullable=True),  # next handshake attempt
    Column("lease_until", DateTime(), nullable=True),  # a sender is working on this subscription until then
    Index("ix_subscription_state_status", "status"),
)

subscription_notification = Table(
    "subscription_notification",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("event_number", Integer, nullable=False),
    Column("notification_id", String(36), nullable=False),  # stable across re-sends: receivers de-duplicate on it
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(8), nullable=False),  # pending | sent | dead (the dead-letter record)
    Column("attempts", Integer, nullable=False),
    Column("due", DateTime(), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created", DateTime(), nullable=False),
    Column("sent", DateTime(), nullable=True),
    UniqueConstraint("subscription_id", "event_number", name="uq_subscription_notification_number"),
    Index("ix_subscription_notification_status_due", "status", "due"),
    sqlite_autoincrement=True,
)

ehr_push = Table(
    "ehr_push",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("batch", String(36), nullable=False),
    Column("refs", Text, nullable=False),  # JSON list of "Type/id": their current versions are sent
    Column("status", String(8), nullable=False),  # pending | dead
    Column("attempts", Integer, nullable=False),
    Column("conflicts", Integer, nullable=False),
    Column("due", DateTime(), nullable=False),
    Column("lease_until", DateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created", DateTime(), nullable=False),
    Index("ix_ehr_push_status_due", "status", "due"),
    sqlite_autoincrement=True,
)
