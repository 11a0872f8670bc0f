"""Every R4 resource type the R4B models cover is accepted and searchable; the others get a 404 that says why.

An integration engine's transaction carries a patient's whole record (Encounter, DiagnosticReport, allergies,
documents, consents): before, any of these types failed the whole transaction with 404.
"""

from __future__ import annotations

from typing import Any

import httpx
from rest_support import HEADERS, assert_outcome, match_ids, search

from carepath.fhir.models import SUPPORTED_TYPES, UNSUPPORTED_TYPES

PATIENT_URL = "urn:uuid:9b0c4d8e-61a8-4a52-9c41-2f1d0c7e6a11"
LOINC = "http://loinc.org"


def _record() -> list[dict[str, Any]]:
    """A patient's record as an engine would send it; codes are LOINC document/report codes."""
    subject = {"reference": PATIENT_URL}
    return [
        {"resourceType": "Encounter", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": subject},
        {"resourceType": "DiagnosticReport", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "11502-2"}]}, "subject": subject},
        {"resourceType": "AllergyIntolerance", "patient": subject, "code": {"text": "penicillin"}},
        {"resourceType": "DocumentReference", "status": "current", "subject": subject,
         "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}]},
        {"resourceType": "Consent", "status": "active", "patient": subject,
         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
         "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}]},
    ]  # fmt: skip


async def test_a_transaction_with_a_whole_record_is_stored_and_searchable(client: httpx.AsyncClient) -> None:
    entries = [{"fullUrl": PATIENT_URL, "resource": {"resourceType": "Patient", "name": [{"family": "Roux"}]},
                "request": {"method": "POST", "url": "Patient"}}]  # fmt: skip
    entries += [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in _record()]
    response = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                 headers=HEADERS)  # fmt: skip
    assert response.status_code == 200, response.text
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    patient_id = locations[0].split("/")[1]
    for location, resource in zip(locations[1:], _record(), strict=True):
        res_type, res_id = location.split("/")[:2]
        assert res_type == resource["resourceType"]
        found = await search(client, res_type, patient=f"Patient/{patient_id}")
        assert match_ids(found) == [res_id], res_type
    reports = await search(client, "DiagnosticReport", code=f"{LOINC}|11502-2")
    assert len(match_ids(reports)) == 1
    encounters = await search(client, "Encounter", **{"class": "AMB", "status": "finished"})
    assert len(match_ids(encounters)) == 1


async def test_an_r4_type_the_models_lack_is_404_with_the_reason(client: httpx.AsyncClient) -> None:
    for request in (client.get("/fhir/MedicinalProduct"), client.get("/fhir/MedicinalProduct/x"),
                    client.post("/fhir/MedicinalProduct", json={"resourceType": "MedicinalProduct"},
                                headers=HEADERS)):  # fmt: skip
        outcome = assert_outcome(await request, 404)
        assert "R4B models have no such type" in outcome["issue"][0]["diagnostics"]
    assert_outcome(await client.get("/fhir/NotAType"), 404)


async def test_an_unservable_type_in_a_transaction_names_the_entry(client: httpx.AsyncClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "SubstanceProtein"}, "request": {"method": "POST", "url": "SubstanceProtein"}}
        ],
    }
    response = await client.post("/fhir", json=bundle, headers=HEADERS)
    assert_outcome(response, 404, expression="Bundle.entry[0].request.url")


def test_every_r4_type_is_served_or_listed_with_a_reason() -> None:
    assert len(SUPPORTED_TYPES) + len(UNSUPPORTED_TYPES) == 146  # R4 4.0.1 has 146 concrete resource types
    assert not set(SUPPORTED_TYPES) & set(UNSUPPORTED_TYPES)
    assert {"Encounter", "DiagnosticReport", "AllergyIntolerance", "DocumentReference", "Consent", "Task"} <= set(
        SUPPORTED_TYPES
    )
    assert all(reason for reason in UNSUPPORTED_TYPES.values())
