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
from carepath.fhir.patch import JSON_PATCH, Patch, patch_from_body
from carepath.service.interactions import Outcome
from carepath.store.records import http_date

FHIR_JSON = "application/fhir+json; fhirVersion=4.0; charset=utf-8"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


SERVED_FHIR_VERSIONS = ("4.0",)  # the `fhirVersion` mime-type parameter names major.minor (R4 §3.1.0.1.6.1)


def check_acceptable(request: Request) -> None:
    """Only R4 JSON is served: `_format=xml`, an XML-only Accept header, or an Accept that asks only for another
    FHIR version (`application/fhir+json; fhirVersion=3.0`) gets 406, not a surprise of another kind."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip() not in _JSON_FORMATS:
            raise NotAcceptable(f"_format={fmt} is not supported; this server speaks FHIR JSON only")
        return
    accept = request.headers.get("accept", "")
    if not accept:
        return
    ranges = [_media_range(part) for part in accept.split(",")]
    json_ranges = [(m, version) for m, version in ranges if m in _JSON_TYPES or m in ("*/*", "application/*", "text/*")]
    if not json_ranges:
        raise NotAcceptable(f"Accept: {accept} cannot be served; use application/fhir+json")
    if all(version is not None and not _served_version(version) for _, version in json_ranges):
        raise NotAcceptable(f"Accept: {accept} asks for another FHIR version; this server serves "
                            f"fhirVersion={', '.join(SERVED_FHIR_VERSIONS)} (R4) only, see $versions")  # fmt: skip


def check_content_version(request: Request) -> None:
    """A body declared as another FHIR version (`Content-Type: ...; fhirVersion=3.0`) is not R4: 415."""
    _, version = _media_range(request.headers.get("content-type", ""))
    if version is not None and not _served_version(version):
        raise UnsupportedMediaType(f"fhirVersion={version} content is not accepted; this server speaks R4 (4.0)")


def _media_range(text: str) -> tuple[str, str | None]:
    """`application/fhir+json; fhirVersion=4.0; q=0.9` -> ("application/fhir+json", "4.0")."""
    media, *params = (p.strip() for p in text.split(";"))
    version = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "fhirversion":
            version = value.strip().strip('"')
    return media.lower(), version


def _served_version(version: str) -> bool:
    """4.0 and its patch releases (4.0.1) are R4; anything else is another FHIR version."""
    return any(version == v or version.startswith(f"{v}.") for v in SERVED_FHIR_VERSIONS)


async def read_resource_body(request: Request, max_bytes: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    check_content_version(request)
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not supported; send application/fhir+json"
        )
    return jsonutil.loads_resource(await read_limited(request, max_bytes))


async def read_patch_body(request: Request, max_bytes: int) -> Patch:
    """A PATCH body: `application/json-patch+json` (JSON Patch) or FHIR JSON (a FHIRPath Patch Parameters)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == JSON_PATCH:
        return patch_from_body(content_type, jsonutil.loads(await read_limited(request, max_bytes)))
    if content_type in _JSON_TYPES:
        return patch_from_body(content_type, await read_resource_body(request, max_bytes))
    raise UnsupportedMediaType(f"PATCH takes {JSON_PATCH} or a FHIRPath Patch (application/fhir+json Parameters), "
                               f"not {content_type or '(none)'}")  # fmt: skip


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
    wanted = prefer(request, "return") if request.method in ("POST", "PUT", "PATCH") else None
    if wanted == "minimal":
        return Response(status_code=outcome.status, headers=headers)
    if wanted == "OperationOutcome":
        verb = "Created" if outcome.status == 201 else "Updated"
        info = Issue(f"{verb} {stored.versioned_url}", "informational", "information")
        return json_response(operation_outcome([info]), outcome.status, headers)
    assert stored.content is not None
    return Response(stored.content.encode(), status_code=outcome.status, media_type=FHIR_JSON, headers=headers)
