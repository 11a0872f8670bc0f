"""Headers every answer carries: nosniff, no-store on the FHIR API, a CSP, and no server banner."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API serves JSON only: nothing may be framed, scripted or loaded from it.
_CSP_API = b"default-src 'none'; frame-ancestors 'none'"
# /docs is Swagger UI served from the package (fastapi-offline): its assets are ours, and it starts with one inline
# script. Pages that set their own policy (the worklist) keep it: a second header would only narrow it further.
_CSP_DOCS = (b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self' data:; "
             b"connect-src 'self'; frame-ancestors 'none'")  # fmt: skip
# Not patient data, and worth caching: the capability statement and the SMART configuration.
_CACHEABLE = ("/fhir/metadata", "/fhir/.well-known/smart-configuration")


class HardeningMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        no_store = path.startswith("/fhir") and path.rstrip("/") not in _CACHEABLE

        async def harden(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if b"content-security-policy" not in names:
                    csp = _CSP_DOCS if content_type.startswith(b"text/html") else _CSP_API
                    headers.append((b"content-security-policy", csp))
                if no_store and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, harden)
