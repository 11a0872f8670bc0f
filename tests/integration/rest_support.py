"""Helpers for the HTTP integration tests: FHIR headers, small resource builders, and outcome checks.

Codes used here come from shared/clinical/treatment-failure-pathway.md (LOINC 89247-1 ECOG performance
status, SNOMED CT 254637007 non-small cell lung cancer); identifiers use an example.org system.
"""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
MRN = "http://hospital.example.org/mrn"
LOINC = "http://loinc.org"
ECOG = "89247-1"
SNOMED = "http://snomed.info/sct"
NSCLC = "254637007"


async def create(client: httpx.AsyncClient, resource: dict[str, Any], **headers: str) -> dict[str, Any]:
    """POST a resource and return what the server stored (fails the test unless 201)."""
    response = await client.post(f"/fhir/{resource['resourceType']}", json=resource, headers={**HEADERS, **headers})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def put(client: httpx.AsyncClient, resource: dict[str, Any], **headers: str) -> httpx.Response:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    return await client.put(url, json=resource, headers={**HEADERS, **headers})


async def search(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    """GET a search (or history) URL and return the Bundle (fails the test unless 200)."""
    response = await client.get(f"/fhir/{path}", params=params, headers={"Accept": FHIR_JSON})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "Bundle"
    return body


def match_ids(bundle: dict[str, Any]) -> list[str]:
    """Ids of the `match` entries, in Bundle order."""
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def entry_urls(bundle: dict[str, Any], mode: str) -> set[str]:
    """`Type/id` of the entries with search mode `mode` (match, include, outcome)."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    }


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


async def follow_pages(client: httpx.AsyncClient, first: dict[str, Any]) -> list[dict[str, Any]]:
    """`first` and every page reached through its `next` links, in order (each fetch must answer 200)."""
    pages = [first]
    while (next_url := link(pages[-1], "next")) is not None:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def assert_outcome(response: httpx.Response, status: int, *, expression: str | None = None) -> dict[str, Any]:
    """The response is an OperationOutcome error with `status` (and an issue naming `expression`)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"] and all(issue["diagnostics"] for issue in outcome["issue"])
    if expression is not None:
        expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
        assert expression in expressions, outcome
    return outcome


def patient(family: str, *, mrn: str | None = None, birth_date: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}], **extra}
    if mrn is not None:
        body["identifier"] = [{"system": MRN, "value": mrn}]
    if birth_date is not None:
        body["birthDate"] = birth_date
    return body


def task(
    patient_id: str, *, status: str = "requested", due: str | None = None, owner: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "for": {"reference": f"Patient/{patient_id}"},
        **extra,
    }
    if due is not None:
        body["restriction"] = {"period": {"end": due}}
    if owner is not None:
        body["owner"] = {"reference": owner}
    return body


def ecog(patient_id: str, effective: str, score: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": ECOG}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueInteger": score,
    }
