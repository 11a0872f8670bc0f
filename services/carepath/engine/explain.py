"""Explainability: every generated request and Task says which pathway action created it and why.

Machine-readable: the complex extension `generated-by` (plan = url|version, actionId, actionTitle, one
`condition` per applicability condition that held, the action's and its ancestors'). Human-readable: a `note`
sentence for the care coordinator saying the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from carepath.canonical import extension_url

GENERATED_BY = extension_url("generated-by")
WAITS_FOR = extension_url("task-waits-for")
ACTION_TRIGGER = extension_url("action-trigger")
PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"


@dataclass(frozen=True)
class Reason:
    """Why one action produced work: its plan, identity and the conditions that held on the way to it."""

    plan: str
    plan_title: str | None
    action_id: str | None
    action_title: str | None
    conditions: tuple[str, ...]  # the ancestors' conditions first, then the action's own
    own: int = 0  # how many of `conditions` (the last ones) are the action's own
    rule: str | None = None  # the action's description: its rule in plain words when it has no condition


def condition_text(condition: dict[str, Any]) -> str:
    expression = condition.get("expression") or {}
    return str(expression.get("description") or expression.get("expression") or "")


def _extension(reason: Reason) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "plan", "valueCanonical": reason.plan}]
    if reason.action_id:
        parts.append({"url": "actionId", "valueString": reason.action_id})
    if reason.action_title:
        parts.append({"url": "actionTitle", "valueString": reason.action_title})
    parts.extend({"url": "condition", "valueString": c} for c in reason.conditions if c)
    return {"url": GENERATED_BY, "extension": parts}


def _sentence(reason: Reason) -> str:
    """The step's own reason first (a coordinator reads why *this* task exists), then what it was created by."""
    plan = f"{reason.plan_title} ({reason.plan})" if reason.plan_title else reason.plan
    action = reason.action_title or reason.action_id or "an action"
    split = len(reason.conditions) - reason.own
    own = "; ".join(c.rstrip(".") for c in reason.conditions[split:] if c)
    inherited = "; ".join(c.rstrip(".") for c in reason.conditions[:split] if c) or "it applies unconditionally"
    own = own or (reason.rule or "").rstrip(".") or "every plan of this pathway has it (no condition of its own)"
    ident = f" [{reason.action_id}]" if reason.action_id and reason.action_title else ""
    origin = f"Created by pathway {plan}, action '{action}'{ident}, which applies because: {inherited}."
    return f"Why this step: {own}. {origin}"


def explain(resource: dict[str, Any], reason: Reason) -> None:
    """Add the generated-by extension and the coordinator note to a generated request or Task."""
    resource.setdefault("extension", []).append(_extension(reason))
    resource.setdefault("note", []).append({"text": _sentence(reason)})


def add_extension(resource: dict[str, Any], url: str, values: Sequence[dict[str, Any]]) -> None:
    """Append one extension per value (e.g. `{"valueReference": ...}`)."""
    if values:
        resource.setdefault("extension", []).extend({"url": url, **value} for value in values)
