"""Loading shipped pathway definitions into the store: idempotent upsert by canonical `url|version`.

- A definition not yet stored is created (id `<file id>-<version>`, so each version is its own resource and
  CarePlans started on an older version keep resolving it).
- The same `url|version` with the same content is left alone; with different content it is refused: a
  published version never changes under running CarePlans — publish a new version instead.
- A shipped definition a client deleted through the API is re-created under its id as a new version, with a
  warning: the shipped file is still the definition of that `url|version`. A client that put something else
  under the shipped id (another url or version) is refused like an edit.

Whatever a client did to the stored definitions, loading never crashes: the CLI refuses all or nothing with a
message naming each refused definition; start-up (`keep_going=True`) keeps the refused ones as stored, loads
the rest and logs why, so one API call can never stop the service from starting.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carepath.content.loader import load_pathway_files
from carepath.errors import BusinessRuleViolation, NotFound
from carepath.fhir.models import is_supported
from carepath.store.repository import Repository, StoreTransaction

_SERVER_MANAGED = ("id", "meta")
log = logging.getLogger("carepath.pathways")


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # deleted through the API, stored again
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one message per refused definition

    def summary(self) -> str:
        counts = f"{len(self.created)} created, {len(self.recreated)} re-created, {len(self.unchanged)} unchanged"
        return f"{counts}, {len(self.skipped)} skipped, {len(self.refused)} refused" + (
            f" (not served by this server: {', '.join(self.skipped)})" if self.skipped else ""
        )


async def load_pathways(repository: Repository, directory: Path, *, keep_going: bool = False) -> LoadReport:
    """Upsert every definition of `directory`.

    keep_going=False (the CLI): all or nothing — any refused definition leaves the store as it was and raises
    BusinessRuleViolation naming every refusal. keep_going=True (start-up): refused definitions stay as stored,
    the others are loaded, and the report's `refused` says why.
    """
    report = LoadReport()
    resources = load_pathway_files(directory)
    async with repository.transaction() as tx:
        for resource in resources:
            await _upsert(tx, resource, report)
        if report.refused and not keep_going:
            raise BusinessRuleViolation("; ".join(report.refused))
    for label in report.recreated:
        log.warning("%s had been deleted through the API; re-created from the shipped file as a new version", label)
    for message in report.refused:
        log.error("pathway not loaded: %s", message)
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
        await _store_under_shipped_id(tx, resource, label, report)
    elif _strip(existing) == _strip(resource):
        report.unchanged.append(label)
    else:
        report.refused.append(
            f"{label} is already stored with different content (changed in the file or edited through the API); "
            f"the stored one is kept: a published version must not change — give the changed definition a new version"
        )


async def _store_under_shipped_id(
    tx: StoreTransaction, resource: dict[str, Any], label: str, report: LoadReport
) -> None:
    """Create the definition under its shipped id; a deletion there is undone by a new version."""
    res_type = resource["resourceType"]
    res_id = _versioned_id(str(resource.get("id") or res_type.lower()), resource["version"])
    try:
        current = await tx.read_any(res_type, res_id)
    except NotFound:
        await tx.create({k: v for k, v in resource.items() if k != "id"}, res_id=res_id)
        report.created.append(label)
        return
    if current.deleted:
        await tx.update(res_type, res_id, {**resource, "id": res_id})
        report.recreated.append(label)
        return
    held = current.json()
    report.refused.append(
        f"{label} cannot be stored: its id {res_type}/{res_id} now holds {held.get('url')}|{held.get('version')} "
        f"(changed through the API); the stored one is kept — restore it or give the shipped definition a new id"
    )


def _versioned_id(base_id: str, version: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-.]", "-", f"{base_id}-{version}")[:64]


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in _SERVER_MANAGED}
