"""The single place where failures become OperationOutcomes with the right HTTP status.

Unexpected exceptions are caught by `api.request_id` (so the connection stays usable) and rendered here by
`internal_error_response`.
"""

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
        issues = exc.issues()
        if exc.status >= 500:
            request_id = getattr(request.state, "request_id", "")
            log.error("server error (request %s): %s", request_id, exc.diagnostics)
            issues.append(Issue(f"Request id {request_id}", "exception", "information"))
        return json_response(operation_outcome(issues), exc.status, _allow(request, exc.status))

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


def internal_error_response(exc: Exception, request_id: str) -> Response:
    """The 500 of an unexpected exception (caught by api.request_id): no detail leaks, the request id does.

    It does not claim the request was not applied: the failure may have come after a commit.
    """
    text = (
        f"Internal error ({type(exc).__name__}), request id {request_id}. If this was a write, read the resource "
        f"before retrying: it may or may not have been stored."
    )
    return json_response(operation_outcome([Issue(text, "exception")]), 500)


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
