"""The single place where failures become OperationOutcomes with the right HTTP status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from carepath.api.http import json_response
from carepath.errors import CarepathError, Issue, operation_outcome

log = logging.getLogger("carepath.api")

_HTTP_CODES = {400: "invalid", 404: "not-found", 405: "not-supported", 406: "not-supported", 413: "too-long",
               415: "not-supported"}  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CarepathError)
    async def _carepath(request: Request, exc: CarepathError) -> Response:
        if exc.status >= 500:
            log.error("server error: %s", exc.diagnostics)
        return json_response(operation_outcome(exc.issues()), exc.status, _allow(request, exc.status))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "processing")
        text = f"{request.method} {request.url.path}: {exc.detail}"
        return json_response(operation_outcome([Issue(text, code)]), exc.status_code, _allow(request, exc.status_code))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        issues = [Issue(str(e.get("msg")), "invalid", expression=(".".join(map(str, e.get("loc", ()))),))
                  for e in exc.errors()]  # fmt: skip
        return json_response(operation_outcome(issues), 400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        issue = Issue(f"Internal error ({type(exc).__name__}); the request was not applied", "exception")
        return json_response(operation_outcome([issue]), 500)


def _allow(request: Request, status: int) -> dict[str, str] | None:
    """RFC 9110 §15.5.6: a 405 names, in `Allow`, the methods the target resource does support: each method is
    tried against the app's routes as Starlette would route it."""
    if status != 405:
        return None
    methods = [m for m in _METHODS if any(route.matches({**request.scope, "method": m})[0] == Match.FULL
                                           for route in request.app.router.routes)]  # fmt: skip
    if "GET" in methods:
        methods.append("HEAD")  # served by the HEAD middleware wherever GET is
    return {"Allow": ", ".join(methods)}


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
