"""`carepath serve | worker | db upgrade | pathways load [DIR] | scheduler run-once | events status | events dead
list|redrive | demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carepath.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carepath", description="FHIR R4 care-pathway service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR API (applies migrations and loads pathways first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs PostgreSQL)")
    db = commands.add_parser("db", help="database administration")
    db.add_subparsers(dest="db_command", required=True).add_parser("upgrade", help="apply schema migrations")
    pathways = commands.add_parser("pathways", help="pathway definitions")
    load = pathways.add_subparsers(dest="pathways_command", required=True).add_parser(
        "load", help="upsert by url|version"
    )
    load.add_argument("directory", nargs="?", type=Path, default=None)
    scheduler = commands.add_parser("scheduler", help="the scheduler's duties (overdue Tasks)")
    scheduler.add_subparsers(dest="scheduler_command", required=True).add_parser(
        "run-once", help="alert every overdue Task once, now"
    )
    commands.add_parser("demo", help="load the pathways, create sample patients, apply, print a summary")
    commands.add_parser("worker", help="run the event consumer and the outbox relay until SIGTERM")
    events = commands.add_parser("events", help="the event streams").add_subparsers(
        dest="events_command", required=True
    )
    events.add_parser("status", help="inbound lag and pending entries, dead letters, outbox backlog (JSON)")
    dead = events.add_parser("dead", help="dead letters").add_subparsers(dest="dead_command", required=True)
    dead.add_parser("list", help="show the dead letters (JSON lines)")
    redrive = dead.add_parser("redrive", help="put dead letters back on the inbound stream (all, or the ids given)")
    redrive.add_argument("ids", nargs="*")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter is not news on every start
    try:
        return _run(args, settings)
    except FileNotFoundError as exc:  # a configured folder that does not exist: say so, never start without it
        print(f"carepath: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "db":
        from carepath.store.migrate import upgrade

        upgrade(settings.effective_database_url, settings.database_schema)
        print(f"database at newest schema: {settings.effective_database_url}")
        return 0
    if args.command == "pathways":
        return asyncio.run(_load_pathways(settings, args.directory or settings.effective_pathways_dir))
    if args.command == "scheduler":
        return asyncio.run(_scheduler_run_once(settings))
    if args.command in ("worker", "events"):
        from carepath.events.cli import run_events_command

        return asyncio.run(run_events_command(args, settings))
    from carepath.demo import run_demo

    return asyncio.run(run_demo(settings))


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from carepath.api.app import create_app
    from carepath.store.database import is_sqlite
    from carepath.store.migrate import upgrade

    # No access log: formatting a log record per request costs more than a FHIR read itself. uvicorn picks
    # uvloop and httptools (uvicorn[standard]) when they are installed.
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": False}
    if args.workers <= 1:
        uvicorn.run(create_app(settings), **options)
        return 0
    if is_sqlite(settings.effective_database_url):
        print("--workers above 1 needs PostgreSQL: SQLite allows one writer process", file=sys.stderr)
        return 2
    # Migrate and load once here, so the workers do not race each other through the same DDL.
    upgrade(settings.effective_database_url, settings.database_schema)
    if settings.load_pathways_on_start and asyncio.run(_load_pathways(settings, settings.effective_pathways_dir)):
        return 1
    os.environ["CAREPATH_MIGRATE_ON_START"] = "false"
    os.environ["CAREPATH_LOAD_PATHWAYS_ON_START"] = "false"
    uvicorn.run("carepath.api.app:create_app", factory=True, workers=args.workers, **options)
    return 0


async def _load_pathways(settings: Settings, directory: Path) -> int:
    from carepath.errors import CarepathError
    from carepath.service.pathways import load_pathways
    from carepath.store.database import create_engine
    from carepath.store.migrate import upgrade_async
    from carepath.store.repository import Repository

    await upgrade_async(settings.effective_database_url, settings.database_schema)
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        report = await load_pathways(Repository(engine), directory)
    except CarepathError as exc:
        print(f"refused: {exc.diagnostics}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"pathways from {directory}: {report.summary()}")
    return 0


async def _scheduler_run_once(settings: Settings) -> int:
    from datetime import UTC, datetime

    from carepath.service.scheduler import scan_overdue
    from carepath.store.database import create_engine
    from carepath.store.migrate import upgrade_async
    from carepath.store.repository import Repository

    await upgrade_async(settings.effective_database_url, settings.database_schema)
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    try:
        report = await scan_overdue(Repository(engine), datetime.now(UTC))
    finally:
        await engine.dispose()
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
