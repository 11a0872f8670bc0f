"""Re-evaluation of an active CarePlan, pure: what a fresh `$apply` adds to it and which open Tasks it escalates.

Inputs: the transaction Bundle of a fresh `$apply` (engine/bundle.py) with `now` = the triggering event, and the
Tasks already stored for the CarePlan. Generated resources are matched by the `generated-by` actionId.

- An action whose Task does not exist yet is **added**, once: its request and Task (due dates counted from the
  triggering event, since `now` is its time), pointing at the existing CarePlan and, for a dependency, at the
  existing Task of that action.
- An open Task whose fresh priority is higher (R4 request-priority: routine < urgent < asap < stat) is
  **escalated**: the higher priority and, when the fresh due date is earlier, the earlier due date. Never the
  reverse, and nothing is ever removed here (the stop rules do the removing).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from carepath.engine.explain import GENERATED_BY

PRIORITY_RANK = {"routine": 0, "urgent": 1, "asap": 2, "stat": 3}
CLOSED = frozenset({"completed", "cancelled", "entered-in-error", "failed", "rejected"})
_ADDED_TYPES = frozenset({"Task", "ServiceRequest", "CommunicationRequest", "MedicationRequest"})


@dataclass
class Changes:
    added: list[dict[str, Any]] = field(default_factory=list)  # transaction entries (POST) for new work
    escalated: list[dict[str, Any]] = field(default_factory=list)  # stored Tasks with the new priority / due date

    @property
    def empty(self) -> bool:
        return not self.added and not self.escalated


def action_id(resource: dict[str, Any]) -> str | None:
    for extension in resource.get("extension") or []:
        if extension.get("url") == GENERATED_BY:
            parts = extension.get("extension") or []
            return next((p.get("valueString") for p in parts if p.get("url") == "actionId"), None)
    return None


def changes(fresh: dict[str, Any], careplan: str, existing_tasks: list[dict[str, Any]]) -> Changes:
    """What the fresh Bundle adds to `careplan` (a "CarePlan/<id>") and escalates among `existing_tasks`."""
    entries = fresh["entry"]
    known = {a: t for t in existing_tasks if (a := action_id(t)) is not None}
    mapping = {entries[0]["fullUrl"]: careplan}  # entry 0 is the fresh CarePlan
    for entry in entries:
        resource = entry["resource"]
        task = known.get(action_id(resource) or "")
        if task is not None and resource["resourceType"] == "Task":
            mapping[entry["fullUrl"]] = f"Task/{task['id']}"
        elif task is not None and (task.get("focus") or {}).get("reference"):
            mapping[entry["fullUrl"]] = task["focus"]["reference"]
    out = Changes()
    for entry in entries:
        resource = entry["resource"]
        action = action_id(resource)
        if action is None or resource["resourceType"] not in _ADDED_TYPES:
            continue
        if action not in known:
            out.added.append({**entry, "resource": _rewrite(resource, mapping)})
        elif resource["resourceType"] == "Task":
            escalated = _escalation(known[action], resource)
            if escalated is not None:
                out.escalated.append(escalated)
    return out


def _escalation(stored: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any] | None:
    if stored.get("status") in CLOSED:
        return None
    old, new = PRIORITY_RANK.get(stored.get("priority", "routine"), 0), PRIORITY_RANK.get(fresh.get("priority", ""), 0)
    if new <= old:
        return None
    task = copy.deepcopy(stored)
    task["priority"] = fresh["priority"]
    fresh_end = ((fresh.get("restriction") or {}).get("period") or {}).get("end")
    period = (task.get("restriction") or {}).get("period") or {}
    if fresh_end and (not period.get("end") or fresh_end < period["end"]):  # same format: ISO instants in UTC
        task.setdefault("restriction", {})["period"] = {**period, "end": fresh_end}
    return task


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, mapping))
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    return value


def is_urgent(resource: dict[str, Any]) -> bool:
    return PRIORITY_RANK.get(resource.get("priority", "routine"), 0) >= PRIORITY_RANK["urgent"]


_TYPE = re.compile(r"resourceType\s*=\s*'([A-Za-z]+)'")
_CODES = re.compile(r"code\s*(?:=|in)\s*\(?\s*('[^']+'(?:\s*\|\s*'[^']+')*)")


def data_requirements(plan: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The resource types and the codes the pathway's FHIRPath expressions read (literals in `resourceType='T'`
    and `code='c'` / `code in ('a' | 'b')`), the same derivation `$data-requirements` would make."""
    types: set[str] = set()
    codes: set[str] = set()
    for text in _expressions(plan):
        types.update(_TYPE.findall(text))
        for group in _CODES.findall(text):
            codes.update(re.findall(r"'([^']+)'", group))
    return frozenset(types), frozenset(codes)


def reads(requirements: tuple[frozenset[str], frozenset[str]], resource: dict[str, Any]) -> bool:
    """Whether `resource` is of a kind a pathway reads (its `data_requirements`): a type it names and, for a coded
    resource, a code of it (`code`, `statusReason`) among the pathway's codes."""
    types, codes = requirements
    if resource.get("resourceType") not in types:
        return False
    coded = [c for name in ("code", "statusReason") for c in _codings(resource.get(name))]
    return not coded or any(c.get("code") in codes for c in coded)


def _codings(value: Any) -> list[dict[str, Any]]:
    concepts = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return [c for concept in concepts for c in concept.get("coding") or [] if isinstance(c, dict)]


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["expression"]] if node.get("language") == "text/fhirpath" and isinstance(
            node.get("expression"), str) else []  # fmt: skip
        return own + [t for v in node.values() for t in _expressions(v)]
    if isinstance(node, list):
        return [t for v in node for t in _expressions(v)]
    return []
