"""The OpenAPI document declares request bodies, query/header parameters and the status codes really sent, so
client generators and fuzzers can use it (issue 8)."""

from __future__ import annotations

from typing import Any

from carepath.api.app import create_app
from carepath.settings import Settings

OUTCOME = {"$ref": "#/components/schemas/OperationOutcome"}


def _document() -> dict[str, Any]:
    return create_app(Settings(load_pathways_on_start=False)).openapi()


def test_writes_declare_their_fhir_bodies() -> None:
    paths = _document()["paths"]
    declared = [
        ("/fhir/{res_type}", "post", "Resource"),
        ("/fhir/{res_type}/{res_id}", "put", "Resource"),
        ("/fhir", "post", "Bundle"),
        ("/fhir/PlanDefinition/$apply", "post", "Parameters"),
    ]
    for path, method, schema in declared:
        body = paths[path][method]["requestBody"]
        assert body["content"]["application/fhir+json"]["schema"] == {"$ref": f"#/components/schemas/{schema}"}


def test_parameters_and_headers_are_declared() -> None:
    paths = _document()["paths"]
    search = {p["name"]: p["in"] for p in paths["/fhir/{res_type}"]["get"]["parameters"]}
    assert search["_count"] == "query" and search["identifier"] == "query" and search["res_type"] == "path"
    create = {p["name"] for p in paths["/fhir/{res_type}"]["post"]["parameters"]}
    assert {"If-None-Exist", "Prefer", "X-Request-Id"} <= create
    assert "Idempotency-Key" in {p["name"] for p in paths["/fhir/PlanDefinition/$apply"]["post"]["parameters"]}


def test_every_status_sent_is_declared_and_errors_are_operation_outcomes() -> None:
    for path, operations in _document()["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"200", "500"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert response["content"]["application/fhir+json"]["schema"] == OUTCOME
    update = _document()["paths"]["/fhir/{res_type}/{res_id}"]["put"]["responses"]
    assert {"201", "400", "409", "412", "415", "422"} <= set(update)
