"""Loading shipped pathways: idempotent upsert by url|version, changed same-version content refused, and a new
version leaving running CarePlans on the version they started with. Also the `carepath pathways load` command."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from carepath.cli import main
from carepath.content.loader import load_pathway_files
from carepath.errors import BusinessRuleViolation
from carepath.fhir.search.query import parse_search
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
PLAN_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
SHIPPED = "1.1.0"  # the shipped PlanDefinition's version


@pytest.fixture
async def repository(settings: Settings) -> AsyncIterator[Repository]:
    await upgrade_async(settings.effective_database_url, settings.database_schema)
    engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
    yield Repository(engine)
    await engine.dispose()


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
