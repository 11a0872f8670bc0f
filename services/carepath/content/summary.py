"""A readable digest of an `$apply` result for the demo: one line per Task, with the step, the work's code, its
priority, due date, why it was created and what it waits for.

It reads only what the engine writes into the CarePlan (contained RequestGroup, requests and Tasks, the
`generated-by` and `task-waits-for` extensions), so the demo shows exactly what a worklist would receive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from dateutil.parser import isoparse

from carepath.canonical import extension_url
from carepath.content.walk import actions as plan_actions

GENERATED_BY = extension_url("generated-by")
WAITS_FOR = extension_url("task-waits-for")
GENERIC_SYSTEMS = frozenset(
    {"http://hl7.org/fhir/CodeSystem/task-code", "http://terminology.hl7.org/CodeSystem/communication-category"}
)
Resource = dict[str, Any]


class ApplyOutcome(Protocol):
    """What summarise needs from carepath.engine.ApplyResult (kept structural: content does not import the engine)."""

    careplan: Resource
    applicable: bool


@dataclass(frozen=True)
class TaskSummary:
    task_id: str
    step: str  # the step label (action prefix, e.g. "S14"), else the action id
    action_id: str
    title: str
    kind: str  # the resource type of the work: ServiceRequest, CommunicationRequest or Task
    system: str
    code: str
    display: str
    priority: str
    status: str
    due: datetime | None
    why: tuple[str, ...]  # the applicability conditions that held, the pathway's entry rule first
    waits_for: tuple[str, ...]  # steps whose Tasks must complete first
    urgent_because: str | None = None


def _generated_by(resource: Resource) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    for ext in resource.get("extension", []):
        if ext.get("url") == GENERATED_BY:
            for part in ext.get("extension", []):
                value = next((v for k, v in part.items() if k.startswith("value")), None)
                parts.setdefault(part.get("url", ""), []).append(str(value))
    return parts


def _work_coding(work: Resource) -> dict[str, str]:
    """The specific coding of the work: the request's code (CommunicationRequest: category), else the Task's."""
    concepts = work.get("category", []) if work["resourceType"] == "CommunicationRequest" else [work.get("code")]
    valid = [concept for concept in concepts if isinstance(concept, dict)]
    codings: list[dict[str, str]] = [coding for concept in valid for coding in concept.get("coding", [])]
    specific = [c for c in codings if c.get("system") not in GENERIC_SYSTEMS]
    return (specific or codings or [{}])[0]


def _due(task: Resource) -> datetime | None:
    end = ((task.get("restriction") or {}).get("period") or {}).get("end")
    return isoparse(end) if isinstance(end, str) else None


def _prefixes(groups: Iterable[Resource]) -> dict[str, str]:
    """RequestGroup action id -> its prefix (the step label), over every contained RequestGroup."""
    return {a["id"]: a.get("prefix", a["id"]) for group in groups for a in plan_actions(group) if "id" in a}


def _urgency_rules(plan: Resource | None) -> dict[str, str]:
    """Action id -> the plain-words rule of its `priority` dynamicValue."""
    rules: dict[str, str] = {}
    for action in plan_actions(plan or {}):
        for dynamic in action.get("dynamicValue", []):
            text = (dynamic.get("expression") or {}).get("description")
            if dynamic.get("path") == "priority" and text and "id" in action:
                rules[action["id"]] = str(text)
    return rules


@dataclass(frozen=True)
class _CarePlanIndex:
    contained: dict[str, Resource]  # "#id" -> resource
    steps: dict[str, str]  # action id -> step label
    rules: dict[str, str]  # action id -> urgency rule
    action_of: dict[str, str]  # "#task-id" -> action id

    def step(self, action_id: str) -> str:
        return self.steps.get(action_id, action_id)


def summarise(result: ApplyOutcome, plan: Resource | None = None) -> list[TaskSummary]:
    """One TaskSummary per generated Task, in CarePlan order; pass the PlanDefinition to explain urgency."""
    contained = {f"#{r['id']}": r for r in result.careplan.get("contained", []) if "id" in r}
    tasks = [r for r in contained.values() if r["resourceType"] == "Task"]
    index = _CarePlanIndex(
        contained,
        _prefixes(r for r in contained.values() if r["resourceType"] == "RequestGroup"),
        _urgency_rules(plan),
        {f"#{t['id']}": (_generated_by(t).get("actionId") or [t["id"]])[0] for t in tasks},
    )
    return [_summary(task, index) for task in tasks]


def _summary(task: Resource, index: _CarePlanIndex) -> TaskSummary:
    focus = index.contained.get((task.get("focus") or {}).get("reference", ""))
    work = focus if focus is not None else task
    coding = _work_coding(work)
    action_id = index.action_of[f"#{task['id']}"]
    awaited = [ext["valueReference"]["reference"] for ext in task.get("extension", []) if ext.get("url") == WAITS_FOR]
    priority = str(task.get("priority", "routine"))
    return TaskSummary(
        task_id=task["id"], step=index.step(action_id), action_id=action_id,
        title=str(task.get("description") or coding.get("display") or action_id), kind=work["resourceType"],
        system=coding.get("system", ""), code=coding.get("code", ""), display=coding.get("display", ""),
        priority=priority, status=str(task.get("status")), due=_due(task),
        why=tuple(_generated_by(task).get("condition", [])),
        waits_for=tuple(index.step(index.action_of.get(ref, ref)) for ref in awaited),
        urgent_because=index.rules.get(action_id) if priority != "routine" else None,
    )  # fmt: skip


def _line(item: TaskSummary, shared: set[str]) -> list[str]:
    due = item.due.date().isoformat() if item.due else "no due date"
    head = f"  {item.step:<5} {item.title[:58]:<58} {item.priority.upper():<8} due {due}"
    code = f"{item.code} {item.display}".strip()
    lines = [head, f"        {item.kind}: {code}"]
    own = [why for why in item.why if why not in shared]
    if own:
        lines.append(f"        why: {'; '.join(own)}")
    if item.urgent_because:
        lines.append(f"        priority: {item.urgent_because}")
    if item.waits_for:
        lines.append(f"        waits for: {', '.join(item.waits_for)} (this task's status: {item.status})")
    return lines


def render_summary(heading: str, applicable: bool, items: Sequence[TaskSummary]) -> str:
    """Plain text for a terminal: the heading, the pathway entry reason once, then each Task."""
    if not applicable:
        return f"{heading}\n  The pathway does not apply: nothing is created.\n"
    shared = set.intersection(*(set(item.why) for item in items)) if items else set()
    lines = [heading]
    if shared:
        lines.append(f"  Pathway started because: {'; '.join(sorted(shared))}")
    lines.append(f"  {len(items)} tasks, {sum(i.priority != 'routine' for i in items)} urgent:")
    for item in items:
        lines.extend(_line(item, shared))
    return "\n".join(lines) + "\n"
