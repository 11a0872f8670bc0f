"""The audit trail (issue 13): AuditEvents for reads, searches, writes and failed authentication, searchable
through the API within 5 s, never changeable, no AuditEvents about reading AuditEvents; the failure limit."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from tests.integration.auth_support import AUDIENCE, ISSUER, MakeClient, SigningKey, bearer, jwks, rsa_key, token

from carepath.api.app import create_app
from carepath.settings import Settings

FHIR = "application/fhir+json"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def secured(settings: Settings, tmp_path: Path, key: SigningKey, **extra: Any) -> Settings:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(key)))
    update = {"auth": "jwt", "auth_issuer": ISSUER, "auth_audience": AUDIENCE, "auth_jwks_file": path, **extra}
    return settings.model_copy(update=update)


def client_at(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def audit_search(
    http: httpx.AsyncClient, headers: dict[str, str], query: str, expect: int
) -> list[dict[str, Any]]:
    """Poll the AuditEvent search until it finds `expect` events; the trail promises them within 5 s."""
    deadline = time.monotonic() + 5
    while True:
        bundle = (await http.get(f"/fhir/AuditEvent?{query}&_count=100", headers=headers)).json()
        found = [e["resource"] for e in bundle.get("entry", [])]
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_reads_searches_and_writes_leave_audit_events(
    settings: Settings, tmp_path: Path, make_client: MakeClient
) -> None:
    key = rsa_key()
    admin = bearer(token(key, fhirUser="Practitioner/dr1", client_id="engine-7"))
    async with make_client(secured(settings, tmp_path, key)) as http:
        write = {**admin, "Content-Type": FHIR}
        for pid in ("p1", "p2"):
            assert (
                await http.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid}, headers=write)
            ).status_code == 201
            obs = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "w"},
                "subject": {"reference": f"Patient/{pid}"},
            }
            assert (await http.post("/fhir/Observation", json=obs, headers=write)).status_code == 201
        created = (await http.get("/fhir/Observation?subject=Patient/p1", headers=admin)).json()["entry"][0]["resource"]
        assert (await http.get(f"/fhir/Observation/{created['id']}", headers=admin)).status_code == 200
        assert (await http.get("/fhir/Observation", headers=admin)).status_code == 200
        denied = bearer(token(key, "system/Practitioner.rs"))
        assert (await http.get(f"/fhir/Observation/{created['id']}", headers=denied)).status_code == 403

        reads = await audit_search(http, admin, "subtype=read&outcome=0", 1)
        assert len(reads) == 1
        read = reads[0]
        assert read["type"]["code"] == "rest" and read["action"] == "R" and read["outcome"] == "0"
        agent = read["agent"][0]
        assert agent["who"]["reference"] == "Practitioner/dr1" and agent["who"]["identifier"]["value"] == "engine-1"
        assert agent["name"] == "engine-7" and agent["requestor"] is True and agent["network"]["address"]
        assert {e["what"]["reference"] for e in read["entity"] if "what" in e} == {
            f"Observation/{created['id']}",
            "Patient/p1",
        }
        assert read["source"]["observer"]["display"] == "carepath" and read["recorded"]

        searches = await audit_search(http, admin, "subtype=search-type&entity=Patient/p2", 2)
        patients_listed = [{e["what"]["reference"] for e in s["entity"] if "what" in e} for s in searches]
        assert {"Patient/p1", "Patient/p2"} in patients_listed  # one event for the unfiltered search, both patients
        assert all("description" not in e or "p1" not in e["description"] for s in searches for e in s["entity"])

        creates = await audit_search(http, admin, "action=C&patient=Patient/p1", 2)
        assert {c["subtype"][0]["code"] for c in creates} == {"create", "update"}  # PUT Patient created it
        failed = await audit_search(http, admin, "outcome=4", 1)
        assert [f["subtype"][0]["code"] for f in failed] == ["read"]
        by_agent = await audit_search(http, admin, "agent=Practitioner/dr1", 7)
        assert len(by_agent) >= 7
        today = read["recorded"][:10]
        assert len(await audit_search(http, admin, f"date={today}&type=rest", 8)) >= 8

        before = len(await audit_search(http, admin, "", 0))
        for _ in range(3):
            await http.get("/fhir/AuditEvent", headers=admin)
            await http.get(f"/fhir/AuditEvent/{read['id']}", headers=admin)
        await asyncio.sleep(1.2)  # more than a flush interval
        assert len(await audit_search(http, admin, "", 0)) == before  # reading the trail is not audited

        for method in ("PUT", "DELETE"):
            answer = await http.request(method, f"/fhir/AuditEvent/{read['id']}", headers=write, json=read)
            assert answer.status_code == 405
        assert (await http.get(f"/fhir/AuditEvent/{read['id']}", headers=admin)).json()["meta"]["versionId"] == "1"


async def test_failed_authentication_is_audited_and_limited_per_address(settings: Settings, tmp_path: Path) -> None:
    key = rsa_key()
    admin = bearer(token(key))
    app = create_app(secured(settings, tmp_path, key, auth_failure_limit=5))
    async with (
        app.router.lifespan_context(app),
        client_at(app, "127.0.0.1") as http,
        client_at(app, "10.9.9.9") as other,
    ):
        forged = bearer(token(rsa_key(), kid=key.kid))
        codes = [(await http.get("/fhir/Patient", headers=forged)).status_code for _ in range(7)]
        assert codes == [401] * 5 + [429] * 2
        limited = await http.get("/fhir/Patient", headers=admin)  # the address is limited, whatever it sends
        assert limited.status_code == 429 and limited.json()["issue"][0]["code"] == "throttled"
        assert (await other.get("/fhir/Patient", headers=admin)).status_code == 200  # another address is not
        failures = await audit_search(other, admin, f"type={DCM}|110114", 5)
        assert len(failures) == 5  # each refused token once; the 429s are not written
        assert failures[0]["outcome"] == "4" and failures[0]["agent"][0]["network"]["address"] == "127.0.0.1"
