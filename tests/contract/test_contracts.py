"""contracts/ against the running app: the committed files are exactly what the code generates and serves.

A failure here means the API changed without its published contract: run `python scripts/export_contracts.py`
and commit the result (after checking the change is intended).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from carepath.api.app import create_app
from carepath.fhir.models import SUPPORTED_TYPES, model_class
from carepath.fhir.search.definitions import params_for
from carepath.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def _exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_contracts", REPO / "scripts" / "export_contracts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORTER = _exporter()


def committed(name: str) -> Any:
    return json.loads((CONTRACTS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPORTER.contract_files()))
def test_committed_contract_is_up_to_date(name: str) -> None:
    path = CONTRACTS / name
    assert path.is_file(), f"contracts/{name} is missing: run scripts/export_contracts.py"
    expected = EXPORTER.contract_files()[name]
    assert path.read_text(encoding="utf-8") == expected, f"contracts/{name} is stale: run scripts/export_contracts.py"


async def test_the_served_documents_equal_the_contracts(tmp_path: Path, make_client: MakeClient) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'contract.sqlite'}",
        base_url=EXPORTER.CONTRACT_BASE,
        load_pathways_on_start=False,
    )
    async with make_client(settings) as client:
        metadata = await client.get("/fhir/metadata")
        openapi = await client.get("/openapi.json")
    assert metadata.status_code == 200
    assert metadata.json() == committed("CapabilityStatement.json")
    assert openapi.json() == committed("openapi.json")


def test_capability_statement_lists_every_type_and_its_search_parameters() -> None:
    rest = committed("CapabilityStatement.json")["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert list(by_type) == list(SUPPORTED_TYPES)
    for res_type, entry in by_type.items():
        listed = {p["name"] for p in entry["searchParam"]}
        assert listed == set(params_for(res_type)) - {"_id", "_lastUpdated"}, res_type
    due = next(p for p in by_type["Task"]["searchParam"] if p["name"] == "due-date")
    assert due == {"name": "due-date", "type": "date",
                   "definition": "https://fhir.carepath.dev/SearchParameter/Task-due-date"}  # fmt: skip
    assert {p["name"] for p in rest["searchParam"]} == {"_id", "_lastUpdated"}


def test_due_date_search_parameter_equals_the_bundle_entry() -> None:
    standalone = committed("SearchParameter-Task-due-date.json")
    bundle = committed("search-parameters.json")
    entry = next(e for e in bundle["entry"] if e["resource"]["id"] == "Task-due-date")
    assert standalone == entry["resource"]
    assert entry["fullUrl"] == standalone["url"]
    assert (standalone["code"], standalone["expression"], standalone["base"]) == (
        "due-date", "Task.restriction.period.end", ["Task"],
    )  # fmt: skip


def test_every_carepath_extension_in_use_is_defined_in_contracts() -> None:
    """Integrators get a StructureDefinition for each extension our pathways and code write or read."""
    pattern = re.compile(r"https://fhir\.carepath\.dev/StructureDefinition/([A-Za-z0-9-]+)")
    sources = [*sorted((REPO / "pathways").glob("*.json")), *sorted((REPO / "services").rglob("*.py"))]
    used = {m for path in sources for m in pattern.findall(path.read_text(encoding="utf-8"))}
    used |= {m for path in sorted((REPO / "services").rglob("*.py"))
             for m in re.findall(r'extension_url\("([A-Za-z0-9-]+)"\)', path.read_text(encoding="utf-8"))}  # fmt: skip
    defined = {}
    for path in sorted((CONTRACTS / "extensions").glob("*.json")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        model_class("StructureDefinition").model_validate(definition)  # a valid R4 StructureDefinition
        defined[definition["id"]] = definition
    assert used, "no carepath extension found: the search pattern is wrong"
    assert sorted(used - defined.keys()) == []
    for name in used:
        assert defined[name]["url"] == f"https://fhir.carepath.dev/StructureDefinition/{name}"
        assert defined[name]["type"] == "Extension" and defined[name]["fhirVersion"] == "4.0.1"


# (interaction, method, path) per CapabilityStatement code: each one the statement lists must be routed.
_ROUTED = {
    "read": ("GET", "/fhir/{t}/x"), "vread": ("GET", "/fhir/{t}/x/_history/1"), "update": ("PUT", "/fhir/{t}/x"),
    "patch": ("PATCH", "/fhir/{t}/x"), "delete": ("DELETE", "/fhir/{t}/x"),
    "history-instance": ("GET", "/fhir/{t}/x/_history"), "history-type": ("GET", "/fhir/{t}/_history"),
    "create": ("POST", "/fhir/{t}"), "search-type": ("GET", "/fhir/{t}"),
}  # fmt: skip


def test_capability_statement_lists_every_supported_type_and_interaction_and_each_is_routed() -> None:
    from starlette.routing import Match

    app = create_app(Settings(load_pathways_on_start=False))
    rest = committed("CapabilityStatement.json")["rest"][0]
    assert [r["type"] for r in rest["resource"]] == list(SUPPORTED_TYPES)
    assert committed("resource-types.json")["supported"] == list(SUPPORTED_TYPES)
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    for entry in rest["resource"]:
        codes = [i["code"] for i in entry["interaction"]]
        assert sorted(codes) == sorted(_ROUTED), entry["type"]
        assert (entry["conditionalCreate"], entry["conditionalUpdate"], entry["conditionalDelete"]) == (
            True, True, "single",
        )  # fmt: skip
        for code in codes:
            method, path = _ROUTED[code]
            scope = {"type": "http", "method": method, "path": path.format(t=entry["type"]), "root_path": ""}
            assert any(route.matches(scope)[0] == Match.FULL for route in app.router.routes), (entry["type"], code)
