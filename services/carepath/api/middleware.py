"""ASGI middleware for HTTP conventions that hold for every route: trailing slashes and HEAD.

- `[base]/Patient/` is `[base]/Patient`: served directly, not redirected (a 307 with an empty body breaks clients
  that do not follow redirects on POST, e.g. fhir.js posting a transaction to `[base]/`).
- HEAD is answered wherever GET is (RFC 9110 §9.3.2; load balancers and monitors use it): the GET runs and its
  status and headers are sent without the body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpConventions:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            stripped = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            scope = {**scope, "path": stripped,
                     "raw_path": raw.rstrip(b"/") or b"/" if isinstance(raw, bytes) else raw}  # fmt: skip
        if scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
