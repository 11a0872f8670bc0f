"""Health: `/health/live` (the process answers), `/health/ready` (database and Redis reachable, 503 if not) and
`/health/events` (stream lag, pending entries, dead letters, outbox backlog)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from carepath import jsonutil
from carepath.api.state import app_state
from carepath.events.status import events_status

router = APIRouter(prefix="/health", include_in_schema=False)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(jsonutil.dumps(body), status_code=status, media_type="application/json")


@router.get("/live")
async def live() -> Response:
    return _json({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    state = app_state(request)
    checks = {"database": await _database(state.repository.engine), "redis": await _redis(state)}
    ok = all(v == "ok" for v in checks.values())
    return _json({"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503)


@router.get("/events")
async def events(request: Request) -> Response:
    state = app_state(request)
    return _json(await events_status(state.repository, state.streams))


async def _database(engine: Any) -> str:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the reason is shown
        return f"unavailable: {type(exc).__name__}"
    return "ok"


async def _redis(state: Any) -> str:
    try:
        await state.streams.ping()
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"
