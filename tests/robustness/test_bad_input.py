"""Hostile or careless input gets a 4xx OperationOutcome naming what was wrong, on both databases (issue 8).

Each case here answered 500 (on PostgreSQL, or on both) or silently lost data before.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def outcome(response: httpx.Response, status: int) -> str:
    """The OperationOutcome's text (diagnostics and expressions), after checking the status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(f"{i.get('diagnostics', '')} {' '.join(i.get('expression', []))}" for i in body["issue"])


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("Patient?name=ab%00c", "name"),  # string
        ("Patient?identifier=http://x.org|%00", "identifier"),  # token
        ("Task?subject=Patient/%00", "subject"),  # reference
        ("PlanDefinition?url=http://x.org/%00", "url"),  # uri
        ("Observation?value-quantity=5||mg%00", "value-quantity"),  # quantity
        ("Patient?name:contains=%00", "name:contains"),
        ("Patient?_id=%00", "_id"),
    ],
)
async def test_nul_in_a_search_value_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, path: str, param: str
) -> None:
    assert param in outcome(await client.get(f"/fhir/{path}"), 400)


async def test_nul_in_a_posted_search_and_in_a_batch_search(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert "family" in outcome(await client.post("/fhir/Patient/_search", content=b"family=a%00", headers=form), 400)
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": "Patient?family=%00"}}]}  # fmt: skip
    answer = await client.post("/fhir", json=bundle, headers=HEADERS)
    assert answer.status_code == 200
    entry = answer.json()["entry"][0]["response"]
    assert entry["status"] == "400" and "family" in entry["outcome"]["issue"][0]["diagnostics"]


async def test_nul_in_if_none_exist_is_a_400(client: httpx.AsyncClient) -> None:
    headers = {**HEADERS, "If-None-Exist": "identifier=http://x.org|a%00"}
    answer = await client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert "identifier" in outcome(answer, 400)


async def test_nul_in_apply_subject_and_url_is_a_400(client: httpx.AsyncClient) -> None:
    assert "subject" in outcome(
        await client.get("/fhir/PlanDefinition/$apply?url=http://x.org&subject=Patient/%00"), 400
    )
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://x.org/\u0000"},
        {"name": "subject", "valueString": "Patient/1"}]}  # fmt: skip
    assert "url" in outcome(await client.post("/fhir/PlanDefinition/$apply", json=body, headers=HEADERS), 400)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueReference": {"reference": "Patient/\u0000"}}]}  # fmt: skip
    assert "subject" in outcome(await client.post("/fhir/PlanDefinition/x/$apply", json=body, headers=HEADERS), 400)


def _nested_extensions(levels: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": "http://example.org/fhir/ext", "valueString": "leaf"}
    for _ in range(levels):
        extension = {"url": "http://example.org/fhir/ext", "extension": [extension]}
    return {"resourceType": "Patient", "extension": [extension]}


async def test_deep_nesting_is_a_400_before_validation(client: httpx.AsyncClient) -> None:
    # 150 nested extensions (about 300 JSON levels) used to be a RecursionError in validation: a 500.
    assert "deeper than 100" in outcome(
        await client.post("/fhir/Patient", json=_nested_extensions(150), headers=HEADERS), 400
    )
    assert "deeper than 100" in outcome(
        await client.post("/fhir/Patient", json=_nested_extensions(50), headers=HEADERS), 400
    )
    assert (await client.post("/fhir/Patient", json=_nested_extensions(45), headers=HEADERS)).status_code == 201
    deep = b'{"resourceType":"Bundle","type":"batch","entry":' + b"[" * 3000 + b"]" * 3000 + b"}"
    assert "deeper than 100" in outcome(await client.post("/fhir", content=deep, headers=HEADERS), 400)


async def test_a_list_as_fullurl_is_a_400(client: httpx.AsyncClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": ["urn:uuid:1"], "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient"}}]}  # fmt: skip
    assert "Bundle.entry[0].fullUrl" in outcome(await client.post("/fhir", json=bundle, headers=HEADERS), 400)


async def test_an_overlong_idempotency_key_is_a_400(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": "Patient/1"}, {"name": "persist", "valueBoolean": True}]}  # fmt: skip
    headers = {**HEADERS, "Idempotency-Key": "k" * 300}
    answer = await client.post("/fhir/PlanDefinition/x/$apply", json=body, headers=headers)
    assert "Idempotency-Key" in outcome(answer, 400)


async def test_a_non_utf8_search_form_is_a_400(client: httpx.AsyncClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert "UTF-8" in outcome(await client.post("/fhir/Patient/_search", content=b"name=\xff\xfe", headers=form), 400)


async def test_if_none_exist_without_criteria_is_a_400_not_a_lost_create(client: httpx.AsyncClient) -> None:
    first = await client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=HEADERS)
    assert first.status_code == 201
    for criteria in ("_count=1", "identifier=", "_sort=birthdate"):
        headers = {**HEADERS, "If-None-Exist": criteria}
        answer = await client.post(
            "/fhir/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=headers
        )
        assert "no search criteria" in outcome(answer, 400)  # used to answer 200 with the first Patient
