"""One outbound HTTP request and its verdict: 2xx is delivered, anything else (status, timeout, refused
connection) is a failure described in words for the `error` element and the dead-letter record."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from carepath.delivery.notify import OutboundRequest


@dataclass(frozen=True)
class Result:
    ok: bool
    status: int | None
    error: str | None


async def perform(client: httpx.AsyncClient, request: OutboundRequest, timeout_s: float) -> Result:
    try:
        response = await client.request(
            request.method, request.url, headers=request.headers, content=request.body, timeout=timeout_s
        )
    except httpx.TimeoutException:
        return Result(False, None, f"{request.method} {request.url}: no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Result(False, None, f"{request.method} {request.url}: {type(exc).__name__}: {exc}")
    if 200 <= response.status_code < 300:
        return Result(True, response.status_code, None)
    return Result(False, response.status_code, f"{request.method} {request.url} answered {response.status_code}")
