"""Loading shipped pathway definitions into the store: idempotent upsert by canonical `url|version`.

- A definition not yet stored is created (id `<file id>-<version>`, so each version is its own resource and
  CarePlans started on an older version keep resolving it).
- The same `url|version` with the same content is left alone; with different content it is refused: a
  published version never changes under running CarePlans — publish a new version instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carepath.content.loader import load_pathway_files
from carepath.errors import BusinessRuleViolation
from carepath.fhir.models import is_supported
from carepath.store.repository import Repository, StoreTransaction

_SERVER_MANAGED = ("id", "meta")


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.created)} created, {len(self.unchanged)} unchanged, {len(self.skipped)} skipped" + (
            f" (not served by this server: {', '.join(self.skipped)})" if self.skipped else ""
        )


async def load_pathways(repository: Repository, directory: Path) -> LoadReport:
    """All or nothing: one refused definition leaves the store as it was."""
    report = LoadReport()
    resources = load_pathway_files(directory)
    async with repository.transaction() as tx:
        for resource in resources:
            await _upsert(tx, resource, report)
    return report


async def _upsert(tx: StoreTransaction, resource: dict[str, Any], report: LoadReport) -> None:
    res_type, url, version = resource["resourceType"], resource.get("url"), resource.get("version")
    label = f"{res_type} {url}|{version}"
    if not is_supported(res_type):
        report.skipped.append(label)
        return
    if not isinstance(url, str) or not isinstance(version, str):
        raise BusinessRuleViolation(f"{res_type}/{resource.get('id')}: a shipped definition needs url and version")
    existing = await tx.find_definition(res_type, f"{url}|{version}")
    if existing is None:
        res_id = _versioned_id(str(resource.get("id") or res_type.lower()), version)
        await tx.create({k: v for k, v in resource.items() if k != "id"}, res_id=res_id)
        report.created.append(label)
    elif _strip(existing) == _strip(resource):
        report.unchanged.append(label)
    else:
        raise BusinessRuleViolation(
            f"{label} is already loaded with different content; a published version must not change — "
            f"give the changed definition a new version"
        )


def _versioned_id(base_id: str, version: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-.]", "-", f"{base_id}-{version}")[:64]


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in _SERVER_MANAGED}
