"""The OpenAPI document states what the FHIR API really takes and answers (issue 8): request bodies, query and
header parameters, and every status code sent, each error an OperationOutcome.

The routes read the `Request` themselves (FHIR JSON must stay byte-exact, see jsonutil), so FastAPI cannot infer
any of this; it is added here, after FastAPI built the document, from each operation's method and path shape —
a route added later gets the declarations of its kind without editing this file.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from carepath.fhir.models import SUPPORTED_TYPES

FHIR_JSON = "application/fhir+json"
_REF = "#/components/schemas/"
_SCHEMAS: dict[str, Any] = {
    "Resource": {
        "type": "object",
        "description": "A FHIR R4 resource as JSON (validated by the server, stored as received)",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": list(SUPPORTED_TYPES)}},
        "additionalProperties": True,
    },
    "Bundle": {
        "type": "object",
        "description": "A FHIR Bundle (a batch/transaction request, or a searchset/history/response)",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"type": "string"},
            "entry": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    },
    "Parameters": {
        "type": "object",
        "description": "A FHIR Parameters resource: the operation's input",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"const": "Parameters"},
            "parameter": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        },
        "additionalProperties": True,
    },
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["severity", "code"]}},
        },
    },
}
_REASONS = {
    200: "OK", 201: "Created", 204: "No Content (nothing to delete)", 400: "Malformed or invalid request",
    404: "Unknown type, resource or version", 405: "Method not allowed here", 406: "Only FHIR JSON is served",
    409: "Conflict (concurrent change, id mismatch)", 410: "Deleted", 412: "If-Match / If-None-Exist failed",
    413: "Body too large", 415: "Body is not FHIR JSON", 422: "Business rule or unsupported content",
    500: "Internal error (a defect; quote X-Request-Id)",
}  # fmt: skip
_COMMON_ERRORS = (400, 404, 406, 500)
_WRITE_ERRORS = (409, 412, 413, 415, 422)

_SEARCH = ["_id", "_lastUpdated", "_count", "_offset", "_sort", "_summary", "_total", "_include", "_revinclude",
           "_elements", "identifier", "name", "subject", "patient", "url", "status", "date", "code",
           "value-quantity"]  # fmt: skip
_HISTORY = ["_since", "_count", "_offset"]
_APPLY = ["subject", "url", "version", "encounter", "practitioner", "organization", "useServerData", "persist"]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            describe(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(document: dict[str, Any]) -> None:
    """Declare bodies, parameters and responses on every FHIR operation of `document` (in place)."""
    document.setdefault("components", {})["schemas"] = dict(_SCHEMAS)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _declare(path, method.upper(), operation)


def _declare(path: str, method: str, operation: dict[str, Any]) -> None:
    kind = _kind(path, method)
    parameters = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
    for parameter in parameters:
        if parameter["name"] == "res_type":
            parameter["schema"] = {"type": "string", "enum": list(SUPPORTED_TYPES)}
        else:
            parameter["schema"] = {"type": "string"}
    parameters += [_query(name) for name in _QUERIES.get(kind, ())]
    parameters += [_header(name) for name in _HEADERS.get(kind, ())] + [_header("X-Request-Id")]
    operation["parameters"] = parameters
    body = _BODIES.get(kind)
    if body is not None and method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = body
    else:
        operation.pop("requestBody", None)
    operation["responses"] = {str(code): _response(code, kind) for code in _STATUSES[kind]}


def _kind(path: str, method: str) -> str:
    if "$apply" in path:
        return "apply-post" if method == "POST" else "apply-get"
    if path.rstrip("/") == "/fhir":
        return "bundle"
    if path.endswith("/metadata"):
        return "metadata"
    if "/_history" in path:
        return "vread" if path.rstrip("/").endswith("{version}") else "history"
    if path.rstrip("/").endswith("/_search"):
        return "search-post"
    if path.rstrip("/").endswith("{res_id}"):
        return {"PUT": "update", "DELETE": "delete", "PATCH": "patch"}.get(method, "read")
    return "create" if method == "POST" else "search"


_STATUSES: dict[str, tuple[int, ...]] = {
    "read": (200, 410, *_COMMON_ERRORS),
    "vread": (200, 410, *_COMMON_ERRORS),
    "search": (200, *_COMMON_ERRORS),
    "search-post": (200, 413, *_COMMON_ERRORS),
    "history": (200, *_COMMON_ERRORS),
    "metadata": (200, 406, 500),
    "create": (200, 201, *_COMMON_ERRORS, *_WRITE_ERRORS),
    "update": (200, 201, *_COMMON_ERRORS, *_WRITE_ERRORS),
    "patch": (200, *_COMMON_ERRORS, *_WRITE_ERRORS),
    "delete": (200, 204, 409, *_COMMON_ERRORS),
    "bundle": (200, *_COMMON_ERRORS, *_WRITE_ERRORS),
    "apply-get": (200, 405, 410, 422, *_COMMON_ERRORS),
    "apply-post": (200, 201, 410, *_COMMON_ERRORS, *_WRITE_ERRORS),
}
_QUERIES: dict[str, list[str]] = {"search": _SEARCH, "history": _HISTORY, "apply-get": _APPLY,
                                  "read": ["_format", "_elements"], "search-post": ["_count"]}  # fmt: skip
_HEADERS: dict[str, list[str]] = {"create": ["If-None-Exist", "Prefer"], "update": ["If-Match", "Prefer"],
                                  "search": ["Prefer"], "apply-post": ["Idempotency-Key"]}  # fmt: skip


def _content(schema: str) -> dict[str, Any]:
    return {FHIR_JSON: {"schema": {"$ref": _REF + schema}}}


_BODIES: dict[str, dict[str, Any]] = {
    "create": {"required": True, "content": _content("Resource")},
    "update": {"required": True, "content": _content("Resource")},
    "patch": {"required": True, "content": {"application/json-patch+json": {"schema": {"type": "array"}}}},
    "bundle": {"required": True, "content": _content("Bundle")},
    "apply-post": {"required": True, "content": _content("Parameters")},
    "search-post": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    },
}


# Values with a fixed form get that form, so generated requests get past them to the parameters after them.
_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "_count": {"type": "integer", "minimum": 0},
    "_offset": {"type": "integer", "minimum": 0},
    "_summary": {"type": "string", "enum": ["true", "false", "text", "data", "count"]},
    "_total": {"type": "string", "enum": ["none", "estimate", "accurate"]},
    "_format": {"type": "string", "enum": ["json", "application/fhir+json"]},
    "persist": {"type": "boolean"},
    "useServerData": {"type": "boolean"},
}
_HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "Prefer": {
        "type": "string",
        "enum": [
            "handling=lenient",
            "handling=strict",
            "return=minimal",
            "return=representation",
            "return=OperationOutcome",
        ],
    },
}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": _QUERY_SCHEMAS.get(name, {"type": "string"})}


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": _HEADER_SCHEMAS.get(name, {"type": "string"})}


def _response(code: int, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _REASONS[code]}
    if code == 204:
        return out
    if code >= 400:
        out["content"] = _content("OperationOutcome")
    elif kind in ("search", "search-post", "history", "bundle"):
        out["content"] = _content("Bundle")
    else:
        out["content"] = _content("Resource")
    out["headers"] = {"X-Request-Id": {"schema": {"type": "string"}, "description": "quote it when reporting"}}
    return out
