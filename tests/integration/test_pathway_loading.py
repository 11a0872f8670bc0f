"""Loading shipped pathways: idempotent upsert by url|version, changed same-version content refused, and a new
version leaving running CarePlans on the version they started with. Also the `carepath pathways load` command."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from carepath.cli import main
from carepath.content.loader import load_pathway_files
from carepath.errors import BusinessRuleViolation
from carepath.fhir.search.query import parse_search
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.repository import Repository

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
SHIPPED = "1.1.0"  # the shipped PlanDefinition's version


def _copy_pathways(target: Path, change: Any = None) -> Path:
    target.mkdir()
    for resource in load_pathway_files(PATHWAYS):
        if change is not None:
            resource = change(copy.deepcopy(resource))
        (target / f"{resource['resourceType']}-{resource['id']}.json").write_text(json.dumps(resource))
    return target


async def _plan_versions(repository: Repository) -> list[str]:
    async with repository.reader() as tx:
        found = await tx.search(parse_search("PlanDefinition", [("url", PLAN_URL)]))
    return sorted(stored.json()["version"] for _, stored in found)


async def test_loading_twice_changes_nothing(repository: Repository) -> None:
    first = await load_pathways(repository, PATHWAYS)
    second = await load_pathways(repository, PATHWAYS)
    assert first.created and not first.unchanged
    assert second.unchanged == first.created and not second.created
    assert await _plan_versions(repository) == [SHIPPED]


async def test_changed_content_under_the_same_version_is_refused(repository: Repository, tmp_path: Path) -> None:
    await load_pathways(repository, PATHWAYS)

    def retitle(resource: dict[str, Any]) -> dict[str, Any]:
        if resource["resourceType"] == "PlanDefinition":
            resource["title"] = "Silently changed"
        return resource

    with pytest.raises(BusinessRuleViolation, match="new version"):
        await load_pathways(repository, _copy_pathways(tmp_path / "changed", retitle))
    async with repository.reader() as tx:
        stored = await tx.find_definition("PlanDefinition", f"{PLAN_URL}|{SHIPPED}")
    assert stored is not None and stored["title"] != "Silently changed"


async def test_a_new_version_leaves_running_careplans_on_theirs(repository: Repository, tmp_path: Path) -> None:
    await load_pathways(repository, PATHWAYS)

    def bump(resource: dict[str, Any]) -> dict[str, Any]:
        if resource["resourceType"] == "PlanDefinition":
            resource["version"] = "9.0.0"
        return resource

    report = await load_pathways(repository, _copy_pathways(tmp_path / "v11", bump))
    assert any("9.0.0" in label for label in report.created)
    assert await _plan_versions(repository) == [SHIPPED, "9.0.0"]
    async with repository.reader() as tx:
        old = await tx.find_definition("PlanDefinition", f"{PLAN_URL}|{SHIPPED}")
        newest = await tx.find_definition("PlanDefinition", PLAN_URL)
    assert old is not None and old["version"] == SHIPPED  # a CarePlan's url|version still resolves
    assert newest is not None and newest["version"] == "9.0.0"  # an unversioned canonical gets the newest


def test_cli_loads_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite'}")
    from carepath.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["pathways", "load", str(PATHWAYS)]) == 0
        assert main(["pathways", "load", str(PATHWAYS)]) == 0
        bumped = _copy_pathways(tmp_path / "bad", lambda r: {**r, "description": "changed"})
        assert main(["pathways", "load", str(bumped)]) == 1
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    assert "0 created" in out.out.splitlines()[-1] and "unchanged" in out.out
    assert "refused" in out.err and "new version" in out.err


async def test_the_local_codesystem_is_served(repository: Repository) -> None:
    await load_pathways(repository, PATHWAYS)
    url = "https://fhir.carepath.dev/CodeSystem/cfp-local"
    async with repository.reader() as tx:
        by_url = await tx.search(parse_search("CodeSystem", [("url", url)]))
        by_code = await tx.search(parse_search("CodeSystem", [("code", "tumor-board-review")]))
        unknown = await tx.search(parse_search("CodeSystem", [("code", "no-such-code")]))
    assert [s.json()["url"] for _, s in by_url] == [url]
    assert [s.res_id for _, s in by_code] == [s.res_id for _, s in by_url]
    assert unknown == []


# --- whatever a client did to the stored definitions, loading and start-up survive (issue 8) ---------------------
PLAN_ID = f"chemo-failure-follow-up-{SHIPPED}"


MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def _started(make_client: MakeClient, settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The app as `carepath serve` starts it: lifespan with the shipped pathways loaded."""
    return make_client(settings.model_copy(update={"load_pathways_on_start": True, "pathways_dir": PATHWAYS}))


async def test_a_deleted_shipped_definition_is_recreated_at_start_up(
    settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with _started(make_client, settings) as http:
        assert (await http.delete(f"/fhir/PlanDefinition/{PLAN_ID}")).status_code == 200
    async with _started(make_client, settings) as http:  # used to fail: "Application startup failed"
        answer = await http.get(f"/fhir/PlanDefinition/{PLAN_ID}")
        assert answer.status_code == 200
        assert answer.json()["meta"]["versionId"] == "3"  # created, deleted, re-created: the same id, a new version
    assert any("re-created" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_an_edited_shipped_definition_does_not_stop_start_up(
    settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with _started(make_client, settings) as http:
        plan = (await http.get(f"/fhir/PlanDefinition/{PLAN_ID}")).json()
        edited = {**plan, "title": "Edited through the API"}
        assert (await http.put(f"/fhir/PlanDefinition/{PLAN_ID}", json=edited)).status_code == 200
    async with _started(make_client, settings) as http:
        answer = await http.get(f"/fhir/PlanDefinition/{PLAN_ID}")
        assert answer.json()["title"] == "Edited through the API"  # the version rule: the stored one is kept
        assert (await http.get("/fhir/ActivityDefinition?_summary=count")).json()["total"] > 0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("new version" in m and f"chemo-failure-follow-up|{SHIPPED}" in m for m in errors)


async def test_a_shipped_id_holding_another_version_is_refused_not_a_crash(
    settings: Settings, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with _started(make_client, settings) as http:
        plan = (await http.get(f"/fhir/PlanDefinition/{PLAN_ID}")).json()
        assert (await http.put(f"/fhir/PlanDefinition/{PLAN_ID}", json={**plan, "version": "9.9"})).status_code == 200
    async with _started(make_client, settings) as http:
        assert (await http.get(f"/fhir/PlanDefinition/{PLAN_ID}")).json()["version"] == "9.9"
    assert any(f"PlanDefinition/{PLAN_ID} now holds" in r.getMessage() for r in caplog.records)


async def test_cli_recreates_a_deleted_definition_and_refuses_an_edit_clearly(
    repository: Repository, tmp_path: Path
) -> None:
    await load_pathways(repository, PATHWAYS)
    async with repository.transaction() as tx:
        await tx.delete("PlanDefinition", PLAN_ID)
    report = await load_pathways(repository, PATHWAYS)
    assert report.recreated == [f"PlanDefinition {PLAN_URL}|{SHIPPED}"] and not report.refused
    async with repository.reader() as tx:
        assert (await tx.read("PlanDefinition", PLAN_ID)).version == 3
    async with repository.transaction() as tx:
        stored = (await tx.read("PlanDefinition", PLAN_ID)).json()
        await tx.update("PlanDefinition", PLAN_ID, {**stored, "title": "edited"})
    with pytest.raises(BusinessRuleViolation, match="edited through the API"):
        await load_pathways(repository, PATHWAYS)


def test_cli_load_after_a_delete_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    database = tmp_path / "cli.sqlite"
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    from carepath.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["pathways", "load", str(PATHWAYS)]) == 0

        async def delete_plan() -> None:
            engine = create_engine(f"sqlite+aiosqlite:///{database}")
            async with Repository(engine).transaction() as tx:
                await tx.delete("PlanDefinition", PLAN_ID)
            await engine.dispose()

        asyncio.run(delete_plan())
        assert main(["pathways", "load", str(PATHWAYS)]) == 0  # used to exit 1: "created concurrently; retry"
    finally:
        get_settings.cache_clear()
    assert "1 re-created" in capsys.readouterr().out.splitlines()[-1]
