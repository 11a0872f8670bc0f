"""Every answer carries `X-Request-Id`, and no unexpected exception ever escapes to the server.

The id is the one a proxy sent when it is a sane token (checked: length and characters, so it cannot forge log
lines), else a new one. A 500 repeats it in its OperationOutcome so an integration team can quote it.

Why a pure ASGI middleware catches the unexpected exception itself: Starlette's catch-all handler answers 500 and
then re-raises, and uvicorn answers a re-raised exception by closing the connection without `Connection: close`,
so a client's next, unrelated request on that keep-alive connection fails with a reset.
"""

from __future__ import annotations

import logging
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carepath.api.errors import internal_error_response

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")
log = logging.getLogger("carepath.api")


def request_id_of(scope: Scope) -> str:
    """The proxy's id when it is a sane token, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _VALID.fullmatch(text):
                return text
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Loud: a 500 is always our defect. Method and path only: a query string may hold a patient's name.
            log.exception("UNEXPECTED ERROR (500) request %s: %s %s", request_id, scope["method"], scope["path"])
            if started:  # the answer is already on its way: nothing honest can be added to it
                raise
            await internal_error_response(exc, request_id)(scope, receive, send_with_id)
