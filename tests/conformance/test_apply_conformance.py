"""Conformance of `$apply` output: every PlanDefinition among the official FHIR R4 examples (../shared/fixtures) and
the shipped pathway, applied through HTTP transient and persisted; every generated resource must pass the R4
models (our validation, as a PUT would) and the R4 invariants the models do not check (rqg-1, ele-1, ...).

An example that needs CQL or a Library (most of them) must be refused with a 422 not-supported naming the
element — never applied with its logic silently ignored. Every other answer is a CarePlan, or an informational
OperationOutcome when the plan does not apply to the subject.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_examples_validate import ABSENT
from test_examples_validate import FIXTURES as FIXTURES_DIR

from carepath import jsonutil
from carepath.content.samples import SCENARIOS, sample_case
from carepath.fhir.invariants import invariant_issues
from carepath.fhir.models import model_class
from carepath.fhir.validation import full_validation
from carepath.settings import Settings

pytestmark = pytest.mark.conformance

REPO_ROOT = Path(__file__).resolve().parents[2]

HEADERS = {"Content-Type": "application/fhir+json"}
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
DEFINITION_PREFIXES = ("activitydefinition-", "plandefinition-", "questionnaire-")
MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def _fixtures(prefix: str) -> list[Path]:
    return sorted(FIXTURES_DIR.glob(f"{prefix}*.json")) if FIXTURES_DIR.is_dir() else []


def _plan_params() -> list[Any]:
    plans = _fixtures("plandefinition-")
    if not plans:
        return [pytest.param(None, id="fixtures-absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(path, id=path.stem) for path in plans]


def _needs_cql(value: Any) -> bool:
    """Independent of the engine's own check: a Library, or an expression in a language other than FHIRPath."""
    if isinstance(value, dict):
        if value.get("library") or (isinstance(value.get("language"), str) and "cql" in value["language"]):
            return True
        return any(_needs_cql(v) for v in value.values())
    return isinstance(value, list) and any(_needs_cql(v) for v in value)


def check_generated(resource: dict[str, Any]) -> None:
    """Valid by both full passes of validation (models, required bindings, contained; not the quick path the
    engine and the store use, so that this check is independent of it), and no invariant broken."""
    full_validation(resource, model_class(resource["resourceType"]))
    assert invariant_issues(resource) == [], (resource["resourceType"], invariant_issues(resource))


async def _stored_results(client: httpx.AsyncClient, careplan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource one persisted $apply stored: the Provenance and the resources it targets."""
    found = await client.get("/fhir/Provenance", params={"target": f"CarePlan/{careplan['id']}"})
    (provenance,) = [e["resource"] for e in found.json()["entry"] if e["search"]["mode"] == "match"]
    targets = [(await client.get(f"/fhir/{t['reference']}")).json() for t in provenance["target"]]
    return [provenance, *targets]


async def apply_and_check(client: httpx.AsyncClient, path: str, params: list[dict[str, Any]], persist: bool) -> Any:
    body = {"resourceType": "Parameters",
            "parameter": [*params, *([{"name": "persist", "valueBoolean": True}] if persist else [])]}  # fmt: skip
    response = await client.post(f"/fhir/{path}/$apply", content=jsonutil.dumps(body), headers=HEADERS)
    result = response.json()
    if response.status_code != 200:
        return response.status_code, result
    if result["resourceType"] == "OperationOutcome":  # does not apply: information only, nothing stored
        assert {i["severity"] for i in result["issue"]} <= {"information", "warning"}, result
        return 200, result
    assert result["resourceType"] == "CarePlan"
    check_generated(result)
    for generated in await _stored_results(client, result) if persist else []:
        check_generated(generated)
    return 200, result


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory, make_client: MakeClient) -> AsyncIterator[Any]:
    """One SQLite server for the module: the shipped pathway loaded, every example definition and the sample
    patients stored."""
    database = tmp_path_factory.mktemp("apply-conformance") / "carepath.sqlite"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{database}", base_url="http://testserver/fhir",
                        pathways_dir=REPO_ROOT / "pathways")  # fmt: skip
    async with make_client(settings) as http:
        for path in (p for prefix in DEFINITION_PREFIXES for p in _fixtures(prefix)):
            response = await http.put(_url(jsonutil.loads(path.read_bytes())), content=path.read_bytes(),
                                      headers=HEADERS)  # fmt: skip
            assert response.status_code in (200, 201), (path.name, response.text)
        await http.put("/fhir/Patient/example", json={"resourceType": "Patient", "id": "example"}, headers=HEADERS)
        for case in SCENARIOS:
            stored = await http.post("/fhir", json=case.upsert(datetime.now(UTC)), headers=HEADERS)
            assert stored.status_code == 200, stored.text
        yield http


def _url(resource: dict[str, Any]) -> str:
    return f"/fhir/{resource['resourceType']}/{resource['id']}"


@pytest.mark.parametrize("persist", [False, True], ids=["transient", "persisted"])
@pytest.mark.parametrize("plan_file", _plan_params())
async def test_every_example_plan_definition_applies_validly_or_is_refused_for_cql(
    client: httpx.AsyncClient, plan_file: Path, persist: bool
) -> None:
    plan = jsonutil.loads(plan_file.read_bytes())
    status, result = await apply_and_check(
        client, f"PlanDefinition/{plan['id']}", [{"name": "subject", "valueString": "Patient/example"}], persist
    )
    if _needs_cql(plan):
        assert status == 422 and result["issue"][0]["code"] == "not-supported", result
        assert result["issue"][0]["expression"], result
    else:
        assert status == 200, result


@pytest.mark.parametrize("persist", [False, True], ids=["transient", "persisted"])
@pytest.mark.parametrize("key", [case.key for case in SCENARIOS])
async def test_the_shipped_pathway_gives_valid_r4_for_every_sample_patient(
    client: httpx.AsyncClient, key: str, persist: bool
) -> None:
    params = [{"name": "url", "valueUri": PLAN_URL}, {"name": "subject", "valueString": f"Patient/{key}"}]
    status, result = await apply_and_check(client, "PlanDefinition", params, persist)
    assert status == 200 and result["resourceType"] == "CarePlan", result


async def test_the_shipped_pathway_persisted_on_postgres_is_valid_r4(postgres_settings: Settings,
                                                                     make_client: MakeClient) -> None:  # fmt: skip
    settings = postgres_settings.model_copy(update={"load_pathways_on_start": True,
                                                    "pathways_dir": REPO_ROOT / "pathways"})  # fmt: skip
    async with make_client(settings) as http:
        case = sample_case("P08")
        assert (await http.post("/fhir", json=case.upsert(datetime.now(UTC)), headers=HEADERS)).status_code == 200
        params = [{"name": "url", "valueUri": PLAN_URL}, {"name": "subject", "valueString": "Patient/P08"}]
        status, result = await apply_and_check(http, "PlanDefinition", params, persist=True)
        assert status == 200 and result["resourceType"] == "CarePlan", result
