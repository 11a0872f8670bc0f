"""Engine creation for both dialects, with the SQLite settings that make one writer process safe.

SQLite: WAL (readers never block the writer), a busy timeout, and `BEGIN IMMEDIATE` for every transaction so
two writers queue instead of failing with "database is locked" on lock upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# PostgreSQL: deadlock_detected, serialization_failure (SQLSTATE class 40, "transaction rollback").
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: DBAPIError) -> bool:
    """The database aborted the transaction for a concurrent one: the same unit of work may succeed if re-run."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    # SQLite: still locked after the busy timeout.
    return str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, schema: str = "", pool_size: int = 10) -> AsyncEngine:
    """`hide_parameters`: a database error logs its statement but never the bound values (patients' data)."""
    if is_sqlite(url):
        return _create_sqlite_engine(url)
    # No parallel query: starting a parallel worker (10-30 ms on a busy 2-core host) costs more than the index
    # walks it would split; a worklist page's walk took 28 ms with one worker and 7 ms without (100k Tasks).
    server_settings = {"max_parallel_workers_per_gather": "0", **({"search_path": schema} if schema else {})}
    connect_args = {"server_settings": server_settings}
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args, hide_parameters=True
    )


def read_only_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options of a read-only connection.

    SQLite: a plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so readers never queue behind the writer.
    PostgreSQL: autocommit, which saves the BEGIN and COMMIT round trips of every read; under READ COMMITTED each
    statement takes its own snapshot anyway, so a read-only transaction around them would guarantee nothing more.
    """
    if engine.dialect.name == "sqlite":
        return {"carepath_readonly": True}
    return {"isolation_level": "AUTOCOMMIT"}


def _create_sqlite_engine(url: str) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("carepath_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
