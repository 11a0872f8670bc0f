"""HTTP details of the FHIR REST API: content negotiation, body limits, Prefer, and rendering outcomes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response

from carepath import jsonutil
from carepath.errors import (
    InvalidRequest,
    Issue,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    operation_outcome,
)
from carepath.service.interactions import Outcome
from carepath.store.records import http_date

FHIR_JSON = "application/fhir+json; fhirVersion=4.0; charset=utf-8"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


def check_acceptable(request: Request) -> None:
    """Only JSON is served: `_format=xml` or an XML-only Accept header gets 406, not a JSON surprise."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip() not in _JSON_FORMATS:
            raise NotAcceptable(f"_format={fmt} is not supported; this server speaks FHIR JSON only")
        return
    accept = request.headers.get("accept", "")
    if not accept:
        return
    media = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(m in _JSON_TYPES or m in ("*/*", "application/*", "text/*") for m in media):
        raise NotAcceptable(f"Accept: {accept} cannot be served; use application/fhir+json")


async def read_resource_body(request: Request, max_bytes: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not supported; send application/fhir+json"
        )
    return jsonutil.loads_resource(await read_limited(request, max_bytes))


async def read_limited(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body ({declared} bytes) exceeds the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if size == 0:
        raise InvalidRequest("The request body is empty; a FHIR resource is required")
    return b"".join(chunks)


async def read_form(request: Request, max_bytes: int) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body (`POST _search`) as name/value pairs; it must be UTF-8."""
    raw = await read_limited(request, max_bytes)
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The form body is not UTF-8 (byte {exc.start}); send UTF-8 percent-encoded") from exc


# The client's key and our scope share the idempotency_key column (255): 128 leaves room for the longest scope.
MAX_IDEMPOTENCY_KEY = 128


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header, refused (400) when longer than the column can keep with its scope."""
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"Idempotency-Key is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY} are accepted",
            expression=("Idempotency-Key",),
        )
    return key


def prefer(request: Request, key: str) -> str | None:
    """One token of the Prefer header (RFC 7240), e.g. prefer(request, "return") -> "minimal"."""
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            name, _, value = item.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"')
    return None


def base_url(request: Request, configured: str) -> str:
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/") + "/fhir"


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonutil.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def render(outcome: Outcome, request: Request, base: str) -> Response:
    """An Outcome as an HTTP response, honouring Prefer: return=minimal|representation|OperationOutcome."""
    stored = outcome.stored
    if stored is None:
        if outcome.body is None:
            return Response(status_code=outcome.status)
        return json_response(outcome.body, outcome.status)
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)}
    if outcome.status == 201:
        headers["Location"] = f"{base}/{stored.versioned_url}"
    if stored.deleted:
        info = Issue(f"Deleted {stored.relative_url} (version {stored.version})", "deleted", "information")
        return json_response(operation_outcome([info]), outcome.status, headers)
    wanted = prefer(request, "return") if request.method in ("POST", "PUT") else None
    if wanted == "minimal":
        return Response(status_code=outcome.status, headers=headers)
    if wanted == "OperationOutcome":
        verb = "Created" if outcome.status == 201 else "Updated"
        info = Issue(f"{verb} {stored.versioned_url}", "informational", "information")
        return json_response(operation_outcome([info]), outcome.status, headers)
    assert stored.content is not None
    return Response(stored.content.encode(), status_code=outcome.status, media_type=FHIR_JSON, headers=headers)
