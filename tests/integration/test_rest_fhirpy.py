"""Interoperability: an ecosystem client (fhirpy's AsyncFHIRClient) against a real uvicorn server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound
from tests.live_server import serve_in_thread

from carepath.api.app import create_app
from carepath.settings import Settings


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """uvicorn serving the app in a thread (its own event loop, as in production); stopped afterwards."""
    app = create_app(settings.model_copy(update={"base_url": ""}))  # links built from the real request
    with serve_in_thread(app) as base:
        yield f"{base}/fhir"


async def test_fhirpy_creates_searches_updates_and_deletes(server_url: str) -> None:
    # fhirpy's count() adds `_totalMethod=count` (an Aidbox extension): ignored by default, as R4 says it SHOULD be.
    client = AsyncFHIRClient(server_url, extra_headers={"Accept": "application/fhir+json"})
    patient = client.resource("Patient", name=[{"family": "Interop", "given": ["Fhirpy"]}], birthDate="1961-04-12")
    await patient.save()
    assert patient["id"] and patient["meta"]["versionId"] == "1"

    found = await client.resources("Patient").search(name="interop", birthdate="1961").fetch_all()
    assert [p["id"] for p in found] == [patient["id"]]

    patient["active"] = True
    await patient.save()
    assert patient["meta"]["versionId"] == "2"
    fetched = await client.reference("Patient", patient["id"]).to_resource()
    assert fetched["active"] is True

    await patient.delete()
    assert await client.resources("Patient").search(name="interop").count() == 0
    with pytest.raises(ResourceNotFound):
        await client.reference("Patient", patient["id"]).to_resource()


async def test_fhirpy_ordinary_calls_count_paging_first_and_conditional_update(server_url: str) -> None:
    client = AsyncFHIRClient(server_url, extra_headers={"Accept": "application/fhir+json"})
    family = "Pagedfhirpy"
    for index in range(7):
        await client.resource("Patient", name=[{"family": family, "given": [f"G{index}"]}],
                              birthDate=f"19{50 + index}-01-01").save()  # fmt: skip
    search = client.resources("Patient").search(family=family)
    assert await search.count() == 7  # sends _count=0&_totalMethod=count
    everyone = await search.sort("birthdate").limit(3).fetch_all()  # follows the `next` links, 3 a page
    assert [p["birthDate"][:4] for p in everyone] == [f"19{50 + i}" for i in range(7)]
    assert len(await search.limit(3).fetch()) == 3
    oldest = await search.sort("birthdate").first()
    assert oldest is not None and oldest["birthDate"] == "1950-01-01"
    youngest = await search.search(birthdate="1956").get()
    assert youngest["birthDate"] == "1956-01-01"
    # fhirpy's searchset update() is R4's conditional update: PUT Patient?identifier=...
    criteria = client.resources("Patient").search(identifier="urn:x|fhirpy-1")
    made = await criteria.update(client.resource("Patient", identifier=[{"system": "urn:x", "value": "fhirpy-1"}]))
    again = await criteria.update(
        client.resource("Patient", identifier=[{"system": "urn:x", "value": "fhirpy-1"}], active=True)
    )
    assert made[0]["id"] == again[0]["id"] and made[1] is True and again[1] is False
    assert again[0]["meta"]["versionId"] == "2"


async def test_fhir_js_and_fhir_kit_client_calls_over_plain_http(server_url: str) -> None:
    """What fhir.js and fhir-kit-client send, replayed byte for byte over HTTP (no JavaScript runtime here):
    fhir.js posts a transaction to `[base]/` with its legacy media type and pages with the `next` link;
    fhir-kit-client creates with `If-None-Exist` and follows `next` links as given."""
    async with httpx.AsyncClient(timeout=30) as http:
        fhir_js = {"Content-Type": "application/json+fhir", "Accept": "application/json+fhir"}
        entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}",
                    "resource": {"resourceType": "Patient", "name": [{"family": "Fhirjs", "given": [str(i)]}]},
                    "request": {"method": "POST", "url": "Patient"}} for i in range(5)]  # fmt: skip
        posted = await http.post(f"{server_url}/", json={"resourceType": "Bundle", "type": "transaction",
                                                         "entry": entries}, headers=fhir_js)  # fmt: skip
        assert posted.status_code == 200, posted.text
        assert [e["response"]["status"] for e in posted.json()["entry"]] == ["201 Created"] * 5
        page = (await http.get(f"{server_url}/Patient", params={"family": "Fhirjs", "_count": "2"},
                               headers=fhir_js)).json()  # fmt: skip
        seen = []
        while True:
            seen += [e["resource"]["id"] for e in page["entry"] if e["search"]["mode"] == "match"]
            following = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
            if following is None:
                break
            page = (await http.get(following, headers=fhir_js)).json()
        assert len(seen) == len(set(seen)) == 5

        kit = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        body = {"resourceType": "Patient", "identifier": [{"system": "urn:kit", "value": "k-1"}]}
        first = await http.post(
            f"{server_url}/Patient", json=body, headers={**kit, "If-None-Exist": "identifier=urn:kit|k-1"}
        )
        second = await http.post(
            f"{server_url}/Patient", json=body, headers={**kit, "If-None-Exist": "identifier=urn:kit|k-1"}
        )
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        head = await http.head(f"{server_url}/Patient/{first.json()['id']}", headers=kit)
        assert head.status_code == 200 and head.headers["etag"] == 'W/"1"' and head.content == b""
