"""HTTP conventions stock FHIR clients rely on: trailing slashes, Allow on 405, fhirVersion, $versions, HEAD."""

from __future__ import annotations

import re

import httpx
import pytest
from rest_support import HEADERS, assert_outcome, create, patient


async def test_a_transaction_posted_to_the_base_with_a_slash_is_processed(client: httpx.AsyncClient) -> None:
    """fhir.js posts transactions to `[base]/`; a 307 with an empty body lost them."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("Slash"), "request": {"method": "POST", "url": "Patient"}}]}  # fmt: skip
    response = await client.post("/fhir/", json=bundle, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "transaction-response"
    location = response.json()["entry"][0]["response"]["location"]
    assert (await client.get(f"/fhir/{location.rsplit('/_history', 1)[0]}")).status_code == 200


async def test_every_path_with_a_trailing_slash_is_served_directly(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Trailing"))
    for path in ("/fhir/metadata/", "/fhir/Patient/", f"/fhir/Patient/{created['id']}/",
                 f"/fhir/Patient/{created['id']}/_history/", "/fhir/Patient/_history/", "/healthz/"):  # fmt: skip
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.content, path
    updated = await client.put(f"/fhir/Patient/{created['id']}/", json={**created, "active": True}, headers=HEADERS)
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/fhir/metadata", "GET, HEAD"),
        ("DELETE", "/fhir/metadata", "GET, HEAD"),
        ("POST", "/fhir/Patient/abc", "GET, PUT, PATCH, DELETE, HEAD"),
        ("PUT", "/fhir/Patient/abc/_history/1", "GET, HEAD"),
        ("DELETE", "/fhir/$versions", "GET, HEAD"),
    ],
)
async def test_405_names_the_allowed_methods(client: httpx.AsyncClient, method: str, path: str, allow: str) -> None:
    response = await client.request(method, path, headers=HEADERS)
    assert_outcome(response, 405)
    assert response.headers["allow"] == allow


async def test_a_refused_persisting_get_apply_says_what_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/PlanDefinition/x/$apply", params={"subject": "Patient/p", "persist": "true"})
    assert_outcome(response, 405)
    assert response.headers["allow"] == "GET, POST, HEAD"


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/fhir+json; fhirVersion=3.0", 406),
        ("application/fhir+json; fhirVersion=5.0, application/json; fhirVersion=3.0", 406),
        ("application/fhir+json; fhirVersion=4.0", 200),
        ("application/fhir+json; fhirVersion=4.0.1", 200),
        ("application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0; q=0.5", 200),
        ("application/fhir+json", 200),
    ],
)
async def test_fhir_version_of_accept(client: httpx.AsyncClient, accept: str, status: int) -> None:
    response = await client.get("/fhir/metadata", headers={"Accept": accept})
    assert response.status_code == status, response.text
    if status == 406:
        assert_outcome(response, 406)
        assert "$versions" in response.json()["issue"][0]["diagnostics"]


async def test_a_body_of_another_fhir_version_is_415(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/fhir+json; fhirVersion=3.0"}
    assert_outcome(await client.post("/fhir/Patient", json=patient("Stu3"), headers=headers), 415)
    headers = {"Content-Type": "application/fhir+json; fhirVersion=4.0"}
    assert (await client.post("/fhir/Patient", json=patient("R4"), headers=headers)).status_code == 201


async def test_versions_operation_says_r4(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/$versions", headers={"Accept": "application/fhir+json"})
    assert response.status_code == 200
    assert response.json() == {"resourceType": "Parameters", "parameter": [
        {"name": "version", "valueCode": "4.0"}, {"name": "default", "valueCode": "4.0"}]}  # fmt: skip
    rest = (await client.get("/fhir/metadata")).json()["rest"][0]
    assert {
        "name": "versions",
        "definition": "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
    } in (rest["operation"])


async def test_head_is_served_wherever_get_is(client: httpx.AsyncClient) -> None:
    created = await create(client, patient("Head"))
    for path in ("/fhir/metadata", "/fhir/Patient", f"/fhir/Patient/{created['id']}",
                 f"/fhir/Patient/{created['id']}/_history/1", f"/fhir/Patient/{created['id']}/_history",
                 "/fhir/_history", "/fhir/$versions", "/healthz", "/openapi.json"):  # fmt: skip
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers.get("etag") == got.headers.get("etag"), path
    missing = await client.head("/fhir/Patient/not-there")
    assert missing.status_code == 404 and missing.content == b""


async def test_docs_work_offline(client: httpx.AsyncClient) -> None:
    """The API explorer must load in a hospital network without internet: every asset /docs names is ours."""
    page = await client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url: ?["']([^"']+)["']""", page.text)
    assert assets, page.text
    assert all(a.startswith("/") for a in assets), assets  # no http(s):// CDN
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
