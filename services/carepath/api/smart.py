"""`GET /fhir/.well-known/smart-configuration` (SMART App Launch 2.x §Discovery), open to everyone."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from carepath import jsonutil
from carepath.api.hardening import HardeningMiddleware
from carepath.api.security import SecurityMiddleware, SecurityRuntime
from carepath.api.state import app_state
from carepath.auth.discovery import smart_configuration
from carepath.settings import Settings

router = APIRouter(prefix="/fhir")


@router.get("/.well-known/smart-configuration")
async def smart_config(request: Request) -> Response:
    return Response(jsonutil.dumps(smart_configuration(app_state(request).settings)), media_type="application/json")


def install_security(app: FastAPI, settings: Settings) -> None:
    """The middleware stack, outermost last: CORS (answers preflights), hardening headers, then auth."""
    runtime = SecurityRuntime(settings)
    app.state.security = runtime  # the lifespan closes it (flushes the audit queue) before the engine goes
    app.add_middleware(SecurityMiddleware, runtime=runtime)
    app.add_middleware(HardeningMiddleware)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_credentials=False,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "If-Match", "If-None-Exist", "Prefer",
                           "Idempotency-Key", "X-Request-Id"],
            expose_headers=["ETag", "Location", "Last-Modified", "Content-Location", "X-Request-Id"],
        )  # fmt: skip
