"""Helpers for the `$apply` HTTP tests: a small pathway written for them, Parameters builders, store look-ups.

Codes come from shared/clinical/treatment-failure-pathway.md through `carepath.content.codes` (LOINC
89247-1 ECOG, SNOMED 306237005 referral to palliative care service); identifiers use our own canonical base.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from rest_support import HEADERS, create, search

from carepath.canonical import BASE
from carepath.content import codes

FHIRPATH = "text/fhirpath"
PLAN_URL = f"{BASE}/PlanDefinition/apply-test"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
ECOG_SCORE = (
    "%data.entry.resource.where(resourceType='Observation' and code.coding.exists(system='http://loinc.org' "
    "and code='89247-1')).value"
)


def expression(text: str, language: str = FHIRPATH) -> dict[str, Any]:
    return {"language": language, "expression": text}


def applicability(text: str, language: str = FHIRPATH) -> dict[str, Any]:
    return {"kind": "applicability", "expression": expression(text, language)}


def variable(name: str, text: str) -> dict[str, Any]:
    return {"url": VARIABLE, "valueExpression": {"name": name, **expression(text)}}


def activity(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ActivityDefinition",
        "url": f"{BASE}/ActivityDefinition/apply-test-{name}",
        "version": "1.0.0",
        "name": name.replace("-", "").title(),
        "title": name.replace("-", " ").capitalize(),
        "status": "active",
        "kind": kind,
        **fields,
    }


def canonical(definition: dict[str, Any]) -> str:
    return f"{definition['url']}|{definition['version']}"


ASSESS = activity("ps-reassessment", "Task", code={"coding": [{"system": codes.LOINC, "code": codes.ECOG}]})
REFER = activity(
    "palliative-referral", "ServiceRequest", intent="order",
    code={"coding": [{"system": codes.SNOMED, "code": "306237005"}]},
)  # fmt: skip
INFORM = activity("gp-letter", "CommunicationRequest")


def pathway(*, version: str = "1.0.0", frail_condition: str = f"{ECOG_SCORE} >= %frailEcog") -> dict[str, Any]:
    """Three actions: always reassess; refer when frail (needs a stored ECOG, threshold `%frailEcog`, default 3);
    write to the GP after the reassessment (relatedAction)."""
    return {
        "resourceType": "PlanDefinition",
        "url": PLAN_URL,
        "version": version,
        "name": "ApplyTest",
        "title": "Apply test pathway",
        "status": "active",
        "extension": [variable("frailEcog", "3")],
        "action": [
            {"id": "assess", "title": "Reassess performance status", "definitionCanonical": canonical(ASSESS)},
            {"id": "refer", "title": "Refer to palliative care", "definitionCanonical": canonical(REFER),
             "condition": [applicability(frail_condition)]},
            {"id": "inform", "title": "Write to the GP", "definitionCanonical": canonical(INFORM),
             "relatedAction": [{"actionId": "assess", "relationship": "after-end",
                                "offsetDuration": {"value": 2, "unit": "days", "system": "http://unitsofmeasure.org",
                                                   "code": "d"}}]},
        ],
    }  # fmt: skip


async def store_pathway(client: httpx.AsyncClient, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store the ActivityDefinitions and the PlanDefinition; returns the stored PlanDefinition."""
    for definition in (ASSESS, REFER, INFORM):
        await create(client, definition)
    return await create(client, plan or pathway())


def ecog_observation(patient_id: str, score: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": codes.LOINC, "code": codes.ECOG}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-02-28T10:00:00Z",
        "valueInteger": score,
    }


def parameters(*params: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """`("subject", {"valueString": "Patient/1"})` pairs as a Parameters resource."""
    return {"resourceType": "Parameters", "parameter": [{"name": name, **value} for name, value in params]}


def subject(patient_id: str) -> tuple[str, dict[str, Any]]:
    return ("subject", {"valueString": f"Patient/{patient_id}"})


PERSIST = ("persist", {"valueBoolean": True})


async def post_apply(client: httpx.AsyncClient, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post(f"/fhir/{path}/$apply", json=body, headers={**HEADERS, **headers})


async def apply_ok(client: httpx.AsyncClient, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await post_apply(client, path, body, **headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored(client: httpx.AsyncClient, res_type: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored resource of a type matching `params` (one page of up to 100)."""
    bundle = await search(client, res_type, _count=100, **params)
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def contained(careplan: dict[str, Any], res_type: str) -> list[dict[str, Any]]:
    return [r for r in careplan.get("contained", []) if r["resourceType"] == res_type]


def references(value: Any) -> Iterator[str]:
    """Every Reference.reference inside a resource."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
