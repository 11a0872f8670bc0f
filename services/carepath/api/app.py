"""The FastAPI application: lifespan (migrations, pathways), routers, error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline

from carepath import __version__
from carepath.api import health, operations, rest, smart
from carepath.api.errors import install_error_handlers
from carepath.api.middleware import HttpConventions
from carepath.api.openapi import install_openapi
from carepath.api.request_id import RequestIdMiddleware
from carepath.api.state import AppState
from carepath.auth.config import announce, announce_events_door
from carepath.events.streams import connect
from carepath.events.worker import default_duties, run_duties
from carepath.settings import Settings, get_settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository
from carepath.web import dev_issuer, signin
from carepath.web import routes as web
from carepath.web.session import Sessions

log = logging.getLogger("carepath")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.effective_database_url
        announce(settings)
        if settings.migrate_on_start:
            await upgrade_async(url, settings.database_schema)
        engine = create_engine(url, schema=settings.database_schema)
        # The delivery change feed only while something reads it: a Subscription, or this process's hospital push
        repository = Repository(engine, feed_always=bool(settings.ehr_base_url))
        streams = connect(settings)
        app.state.carepath = AppState(settings, repository, streams)
        if settings.load_pathways_on_start:
            from carepath.service.pathways import load_pathways

            # keep_going: whatever a client did to the stored definitions, the service still starts
            report = await load_pathways(repository, settings.effective_pathways_dir, keep_going=True)
            log.info("pathways: %s", report.summary())
        stop = asyncio.Event()
        # Embedded mode: without a Redis server, this process also runs the worker's duties on the substitute.
        embedded = not settings.redis_url and settings.events_embedded
        if embedded:
            announce_events_door(settings)
        worker = asyncio.create_task(run_duties(default_duties(repository, streams), stop)) if embedded else None
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await streams.close()
            await app.state.security.close()  # flushes the audit queue: before the engine goes
            await repository.close()
            await engine.dispose()

    docs = settings.docs  # CAREPATH_DOCS=false: no /docs and no /openapi.json
    # FastAPIOffline: /docs loads Swagger UI from assets shipped in the fastapi-offline package, not from a CDN,
    # so the API explorer works in a hospital network without internet access (it needs docs_url set).
    app = (FastAPIOffline if docs else FastAPI)(
        title="carepath", version=__version__, lifespan=lifespan, docs_url="/docs" if docs else None,
        redoc_url=None, openapi_url="/openapi.json" if docs else None, redirect_slashes=False,
    )  # fmt: skip
    app.add_middleware(HttpConventions)
    install_error_handlers(app)
    # The coordinator's worklist (`/app`): pages on the same services as the FHIR API.
    app.state.carepath_sessions = Sessions(settings.app_session_secret, settings.app_session_idle_minutes * 60)
    app.include_router(web.router)
    app.include_router(signin.router)  # /app/login and /app/callback (OIDC code flow with PKCE)
    app.include_router(dev_issuer.router)  # CAREPATH_AUTH=dev only: the development issuer (404 otherwise)
    app.mount("/app/static", web.static_files(), name="app-static")
    smart.install_security(app, settings)
    app.include_router(smart.router)
    install_openapi(app)
    # Outermost, outside the security middleware: its header is on every answer, 401/403/429 included.
    app.add_middleware(RequestIdMiddleware)
    app.include_router(operations.router)
    app.include_router(rest.router)
    app.include_router(health.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app
