"""The database schema (SQLAlchemy Core). Alembic migrations in store/migrations mirror it.

resource          current version of every resource (deleted ones stay, flagged, so a read can answer 410)
resource_history  every version ever written (the _history interactions read it)
sp_*              search-index rows of the *current* version, keyed by resource.rid
conditional_key   unique (type, normalised If-None-Exist query): the database, not a search, stops duplicates
idempotency_key   unique client keys for retried operations ($apply with Idempotency-Key)
outbox            events written in the transaction of the change; the relay publishes then deletes them
processed_event   unique keys of handled inbound events (CloudEvents source + id): a redelivery has no effect
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
