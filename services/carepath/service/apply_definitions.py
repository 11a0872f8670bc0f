"""Finding the definition to apply and pre-loading everything it refers to, with a small per-store cache.

The engine is pure, so every ActivityDefinition, nested PlanDefinition and Questionnaire it may resolve is read
before it runs. Re-reading and re-parsing them on every call is most of the cost of a transient `$apply`, so a
stored PlanDefinition's closure is cached by (id, versionId): an edit of the PlanDefinition makes a new
versionId and a new entry. Its definitions are cached only when every reference is pinned (`url|version`) — a
published version never changes (the pathway loader refuses it) — and then for at most `TTL_SECONDS`, which
bounds how long an in-place edit of a pinned definition can go unseen. Unpinned references are re-resolved on
every call, because loading a newer version must change what they mean — in one query per nesting level
(`find_definitions`), not one per reference.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from carepath.engine import DictResolver
from carepath.engine.context import DEFINITION_TYPES
from carepath.engine.requirements import DataRequirements, pathway_data_requirements
from carepath.errors import InvalidRequest, NotFound
from carepath.service.parameters import OperationInput
from carepath.store.repository import Repository, StoreTransaction

TTL_SECONDS = 30.0
_CACHE_SIZE = 64
_MAX_DEPTH = 16  # nested PlanDefinitions deeper than this are a cycle or a mistake; the engine reports cycles


@dataclass(frozen=True)
class Definitions:
    """The PlanDefinition (or ActivityDefinition) to apply and a resolver over everything it refers to."""

    root: dict[str, Any]
    resolver: DictResolver

    @cached_property
    def requirements(self) -> DataRequirements:
        """What applying `root` can read of a record (computed once per cached entry)."""
        return pathway_data_requirements(self.root, self.resolver)

    @property
    def version_reference(self) -> str | None:
        """`PlanDefinition/id/_history/n` for a stored definition (what a Provenance names), else None."""
        root = self.root
        version = (root.get("meta") or {}).get("versionId")
        return f"{root['resourceType']}/{root['id']}/_history/{version}" if root.get("id") and version else None


class _Cache:
    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str, int], tuple[float, Definitions]] = OrderedDict()

    def get(self, key: tuple[str, str, int]) -> Definitions | None:
        found = self._entries.get(key)
        if found is None or time.monotonic() - found[0] > TTL_SECONDS:
            return None
        self._entries.move_to_end(key)
        return found[1]

    def put(self, key: tuple[str, str, int], definitions: Definitions) -> None:
        self._entries[key] = (time.monotonic(), definitions)
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_SIZE:
            self._entries.popitem(last=False)


# One cache per store: ids of different databases (tests, several tenants) must never meet.
_CACHES: weakref.WeakKeyDictionary[Repository, _Cache] = weakref.WeakKeyDictionary()


async def stored_definitions(repository: Repository, tx: StoreTransaction, res_type: str, res_id: str) -> Definitions:
    """A stored PlanDefinition/ActivityDefinition by id, with its closure (cached while its version is current)."""
    stored = await tx.read(res_type, res_id)
    key = (res_type, res_id, stored.version)
    cache = _CACHES.setdefault(repository, _Cache())
    found = cache.get(key)
    if found is not None:
        return found
    root = stored.json()
    definitions, pinned = await _closure(tx, root)
    if pinned:
        cache.put(key, definitions)
    return definitions


async def plan_from_inputs(tx: StoreTransaction, inputs: OperationInput) -> Definitions:
    """Type-level `$apply`: the `planDefinition` resource, or the stored one with canonical `url` [+ `version`]."""
    inline = inputs.one("planDefinition")
    if isinstance(inline, dict):
        if inline.get("resourceType") != "PlanDefinition":
            raise InvalidRequest("Parameter 'planDefinition' must be a PlanDefinition", expression=("Parameters",))
        return (await _closure(tx, inline))[0]
    url = inputs.one("url")
    if not isinstance(url, str):
        raise InvalidRequest("Type-level $apply needs 'planDefinition' (a resource) or 'url' [+ 'version']")
    version = inputs.one("version")
    canonical = f"{url}|{version}" if version else url
    found = await tx.find_definition("PlanDefinition", canonical)
    if found is None:
        raise NotFound(f"No PlanDefinition {canonical}")
    return (await _closure(tx, found))[0]


async def _closure(tx: StoreTransaction, root: dict[str, Any]) -> tuple[Definitions, bool]:
    """Every definition `root` refers to, transitively (nested PlanDefinitions), and whether all were pinned."""
    loaded: dict[str, dict[str, Any]] = {}
    pending = set(_canonicals(root))
    pinned = True
    for _ in range(_MAX_DEPTH):
        if not pending:
            break
        pinned = pinned and all("|" in canonical for canonical in pending)
        # One query per nesting level for all of that level's canonicals, not one per canonical.
        resolved = await tx.find_definitions(DEFINITION_TYPES, pending)
        found = [resource for resource in resolved.values() if resource is not None]
        loaded.update({canonical: resource or {} for canonical, resource in resolved.items()})
        pending = {c for r in found for c in _canonicals(r)} - loaded.keys()
    return Definitions(root, DictResolver([root, *(r for r in loaded.values() if r)])), pinned


def _canonicals(value: Any) -> list[str]:
    """Canonical references to definitions (`#id` ones point into `contained` and need no loading)."""
    if isinstance(value, dict):
        reference = value.get("definitionCanonical")
        out = [reference] if isinstance(reference, str) and not reference.startswith("#") else []
        for k, v in value.items():
            if k != "contained":
                out.extend(_canonicals(v))
        return out
    if isinstance(value, list):
        return [c for v in value for c in _canonicals(v)]
    return []
