"""Abuse limits (issue 13): Bundle entry count, requests per client per second, FHIRPath evaluation time per
`$apply`; each a clear OperationOutcome."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.integration.auth_support import MakeClient, bearer, jwt_settings, rsa_key, token

from carepath.canonical import BASE
from carepath.content.samples import sample_case
from carepath.settings import Settings

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"

FHIR = {"Content-Type": "application/fhir+json"}


def bundle(count: int) -> dict[str, object]:
    entry = {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * count}


async def test_a_bundle_over_the_entry_limit_is_413_and_writes_nothing(
    settings: Settings, make_client: MakeClient
) -> None:
    async with make_client(settings.model_copy(update={"max_bundle_entries": 3})) as http:
        assert (await http.post("/fhir", json=bundle(3), headers=FHIR)).status_code == 200
        refused = await http.post("/fhir", json=bundle(4), headers=FHIR)
        assert refused.status_code == 413
        assert refused.json()["issue"][0]["code"] == "too-long" and "at most 3" in refused.text
        assert (await http.get("/fhir/Patient?_summary=count")).json()["total"] == 3


async def test_requests_per_client_per_second(tmp_path: Path, make_client: MakeClient) -> None:
    key = rsa_key()
    settings = jwt_settings(tmp_path, key, audit=False, rate_limit_per_second=1)
    async with make_client(settings) as http:
        first, second = bearer(token(key, client_id="a")), bearer(token(key, client_id="b"))
        # Counting over the window is tested with a clock in tests/unit/test_auth_scopes.py; here only the answer.
        codes = [(await http.get("/fhir/Patient/x", headers=first)).status_code for _ in range(3)]
        assert codes[0] == 404 and 429 in codes
        assert (await http.get("/fhir/Patient/x", headers=second)).status_code == 404  # the limit is per client
        over = await http.get("/fhir/Patient/x", headers=first)
        assert over.status_code != 429 or over.json()["issue"][0]["code"] == "throttled"


async def test_an_apply_over_its_evaluation_time_limit_is_422_and_stores_nothing(
    settings: Settings, make_client: MakeClient
) -> None:
    # 1 ms of FHIRPath for the shipped pathway's dozens of expressions: the limit is always reached before the last
    # one (the budget itself is tested with a fake clock in tests/unit/engine/test_engine_budget.py).
    tiny = {"load_pathways_on_start": True, "pathways_dir": PATHWAYS, "apply_evaluation_limit_ms": 1}
    async with make_client(settings.model_copy(update=tiny)) as http:
        assert (await http.post("/fhir", json=sample_case("P01").upsert(datetime.now(UTC)), headers=FHIR)).is_success
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "url", "valueUri": f"{BASE}/PlanDefinition/chemo-failure-follow-up"},
            {"name": "subject", "valueString": "Patient/P01"}, {"name": "persist", "valueBoolean": True}]}  # fmt: skip
        refused = await http.post("/fhir/PlanDefinition/$apply", json=body, headers=FHIR)
        assert refused.status_code == 422, refused.text
        [issue] = refused.json()["issue"]
        assert issue["code"] == "too-costly" and "1 ms" in issue["diagnostics"]
        assert issue["expression"][0].startswith("PlanDefinition")  # the element it stopped before
        for res_type in ("CarePlan", "Task", "Provenance"):
            assert (await http.get(f"/fhir/{res_type}?_summary=count")).json()["total"] == 0
