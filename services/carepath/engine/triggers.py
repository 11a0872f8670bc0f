"""Which pathways an event triggers: R4 TriggerDefinition (§12.19.10.4 / MetaData TriggerDefinition) on actions.

Pure: an event (a resource added or modified, with its previous version, or a named event) and a PlanDefinition
in, the matching triggers out. Only `status = active` PlanDefinitions are triggered. Supported kinds:

- `named-event`: matches an event of that `name` (trd-3: a named event requires a name).
- `data-added` (a first version), `data-modified` (a later version), `data-changed` (either): the resource must
  meet every one of the trigger's `data` requirements (trd-3; R4: all must be true) — its `type`, and every
  `codeFilter` (a coding at `path` with one of the filter's `code`s, system and code) — and the optional
  `condition` (trd-2: only with a data requirement), a `text/fhirpath` Expression evaluated with the
  triggering resource as context and `%previous` its previous version (empty for an addition); true means
  triggered, false or empty not.

`periodic`, `data-removed` and the access kinds are never matched here (deletions do not enrol anyone).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from carepath.errors import InvalidResource
from carepath.fhir.fhirpath import FhirPathError, evaluate

Change = Literal["added", "modified"]
_DATA_KINDS: dict[str, frozenset[Change]] = {
    "data-added": frozenset({"added"}),
    "data-modified": frozenset({"modified"}),
    "data-changed": frozenset({"added", "modified"}),
}


@dataclass(frozen=True)
class TriggerEvent:
    """A named event, or a resource just written (`previous` is its earlier version, None when it is new)."""

    name: str | None = None
    resource: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None

    @property
    def change(self) -> Change:
        return "modified" if self.previous is not None else "added"


def action_triggers(plan: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(FHIRPath location, TriggerDefinition) of every action, nested actions included."""

    def walk(actions: list[dict[str, Any]], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for i, action in enumerate(actions):
            path = f"{prefix}.action[{i}]"
            for j, trigger in enumerate(action.get("trigger") or []):
                yield f"{path}.trigger[{j}]", trigger
            yield from walk(action.get("action") or [], path)

    return walk(plan.get("action") or [], "PlanDefinition")


def triggered_by(plan: dict[str, Any], event: TriggerEvent, now: datetime) -> list[str]:
    """The locations of the plan's triggers that `event` fires (empty: not triggered; inactive plans never are)."""
    if plan.get("status") != "active":
        return []
    return [path for path, trigger in action_triggers(plan) if _fires(trigger, event, now, path)]


def _fires(trigger: dict[str, Any], event: TriggerEvent, now: datetime, path: str) -> bool:
    kind = trigger.get("type")
    if kind == "named-event":
        return event.name is not None and trigger.get("name") == event.name
    if kind not in _DATA_KINDS or event.resource is None or event.change not in _DATA_KINDS[kind]:
        return False
    requirements = trigger.get("data") or []
    # "If more than one data requirement is specified, then all the data requirements must be true" (R4).
    if not requirements or not all(_meets(requirement, event.resource) for requirement in requirements):
        return False
    condition = trigger.get("condition")
    return condition is None or _condition_holds(condition, event, now, f"{path}.condition")


def _meets(requirement: dict[str, Any], resource: dict[str, Any]) -> bool:
    if requirement.get("type") != resource.get("resourceType"):
        return False
    return all(_code_filter_holds(f, resource) for f in requirement.get("codeFilter") or [])


def _code_filter_holds(code_filter: dict[str, Any], resource: dict[str, Any]) -> bool:
    """A coding at `path` (a simple element path such as `code` or `statusReason`) equal to one of the codes."""
    path = code_filter.get("path") or code_filter.get("searchParam")
    if not isinstance(path, str):
        return False
    wanted = {(c.get("system"), c.get("code")) for c in code_filter.get("code") or []}
    found = _codings(evaluate(resource, path))
    return any((c.get("system"), c.get("code")) in wanted for c in found)


def _codings(values: list[Any]) -> Iterator[dict[str, Any]]:
    for value in values:
        if isinstance(value, dict) and "coding" in value:
            yield from (c for c in value["coding"] if isinstance(c, dict))
        elif isinstance(value, dict) and "code" in value:
            yield value


def _condition_holds(condition: dict[str, Any], event: TriggerEvent, now: datetime, path: str) -> bool:
    if condition.get("language") != "text/fhirpath" or not isinstance(condition.get("expression"), str):
        raise InvalidResource("A trigger condition must be a text/fhirpath expression", expression=(path,))
    previous = [event.previous] if event.previous is not None else []
    try:
        result = evaluate(event.resource, condition["expression"], {"previous": previous}, now=now)
    except FhirPathError as exc:
        raise InvalidResource(f"Trigger condition: {exc}", expression=(path,)) from exc
    return result == [True]
