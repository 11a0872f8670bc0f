"""The output structure (R4): a CarePlan containing a RequestGroup that mirrors the applicable actions, plus
every generated request, Task and Goal, all linked by `#id` references."""

from __future__ import annotations

from typing import Any

from carepath.engine.activity import Performers
from carepath.engine.explain import ACTION_TRIGGER
from carepath.engine.expressions import VARIABLE_EXTENSION
from carepath.engine.nodes import Frame, Node
from carepath.engine.run import Run
from carepath.engine.timing import format_instant

ACTION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/action-type"
_CREATE = {"coding": [{"system": ACTION_TYPE_SYSTEM, "code": "create"}]}
_COPIED = (
    "prefix", "title", "description", "textEquivalent", "priority", "code", "documentation", "type",
    "timingDateTime", "timingAge", "timingPeriod", "timingDuration", "timingRange", "timingTiming",
    "groupingBehavior", "selectionBehavior", "requiredBehavior", "precheckBehavior", "cardinalityBehavior",
)  # fmt: skip


def _request_group_action(run: Run, node: Node, groups: list[dict[str, Any]]) -> dict[str, Any]:
    action = node.action
    out: dict[str, Any] = {"id": action["id"]} if isinstance(action.get("id"), str) else {}
    extensions = [e for e in action.get("extension", []) if e.get("url") != VARIABLE_EXTENSION]
    # R4 RequestGroup.action has no trigger: keep it as an extension so an event router can still read it.
    extensions += [{"url": ACTION_TRIGGER, "valueTriggerDefinition": t} for t in action.get("trigger", [])]
    if extensions:
        out["extension"] = extensions
    out.update({key: action[key] for key in _COPIED if key in action})
    kept = [c for c in action.get("condition", []) if c.get("kind") in ("start", "stop")]
    if kept:
        out["condition"] = kept
    related = [r for r in action.get("relatedAction", []) if r.get("actionId") in node.frame.by_action_id]
    if related:
        out["relatedAction"] = related
    participants = Performers.of(list(action.get("participant", [])), run.ctx).references
    if participants:
        out["participant"] = list(participants)
    resource_id = (
        node.main["id"] if node.main else _request_group(run, node.subframe, groups) if node.subframe else None
    )
    children = [_request_group_action(run, child, groups) for child in node.children]
    if resource_id:
        create = {"reference": f"#{resource_id}"}
        if children:  # rqg-1: resource or sub-actions, not both; the action's own resource goes first
            children.insert(0, {"title": node.label, "resource": create, "type": _CREATE})
        else:
            out["resource"] = create
            out.setdefault("type", _CREATE)
    if children:
        out["action"] = children
    return out


def _request_group(run: Run, frame: Frame, groups: list[dict[str, Any]]) -> str:
    """Build the RequestGroup of one (possibly nested) plan into `groups`; returns its id."""
    ctx = run.ctx
    group: dict[str, Any] = {"resourceType": "RequestGroup", "id": run.new_id("RequestGroup")}
    groups.append(group)
    group.update({"instantiatesCanonical": [frame.canonical], "status": "active", "intent": "plan",
                  "subject": {"reference": ctx.subject}, "authoredOn": format_instant(ctx.now)})  # fmt: skip
    if ctx.encounter:
        group["encounter"] = {"reference": ctx.encounter}
    if ctx.practitioner:
        group["author"] = {"reference": ctx.practitioner}
    actions = [_request_group_action(run, node, groups) for node in frame.roots]
    if actions:
        group["action"] = actions
    return str(group["id"])


def _goal(run: Run, goal: dict[str, Any], goal_id: str) -> dict[str, Any]:
    """R4 PlanDefinition.goal -> Goal. `start` is a CodeableConcept (an event such as "pathway start"), so it
    becomes Goal.startCodeableConcept; no start date is invented. Targets keep `measure` and `detail[x]`; a
    target's `due` (a Duration after the goal's start) is Goal.target.dueDuration: a dueDate would need a start
    date, which a PlanDefinition goal never gives."""
    out: dict[str, Any] = {
        "resourceType": "Goal",
        "id": goal_id,
        "lifecycleStatus": "active",
        "description": goal.get("description") or {"text": "Goal"},
        "subject": {"reference": run.ctx.subject},
    }
    if goal.get("category"):
        out["category"] = [goal["category"]]  # PlanDefinition.goal.category 0..1, Goal.category 0..*
    for key in ("priority", "addresses"):
        if goal.get(key):
            out[key] = goal[key]
    if goal.get("start"):
        out["startCodeableConcept"] = goal["start"]
    targets = [_goal_target(t) for t in goal.get("target", [])]
    if targets:
        out["target"] = targets
    return out


def _goal_target(target: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in target.items() if k != "due"}
    if "due" in target:
        out["dueDuration"] = target["due"]
    return out


def _goals(run: Run, frame: Frame) -> list[dict[str, Any]]:
    """Goals of every applied plan: those actions point to (ids already given) and the plan's others."""
    goals: list[dict[str, Any]] = []
    for k, goal in enumerate(frame.plan.get("goal", [])):
        key = str(goal.get("id") or f"goal[{k}]")
        if key not in frame.goal_ids:
            frame.goal_ids[key] = run.new_id("Goal")
        goals.append(_goal(run, goal, frame.goal_ids[key]))
    return goals


def careplan(run: Run, top: Frame, nodes: list[Node]) -> dict[str, Any]:
    ctx = run.ctx
    groups: list[dict[str, Any]] = []
    _request_group(run, top, groups)
    frames = [top, *(n.subframe for n in nodes if n.subframe is not None)]
    goals = [goal for frame in frames if frame.roots for goal in _goals(run, frame)]
    generated = [r for n in nodes for r in {id(n.main): n.main, id(n.task): n.task}.values() if r is not None]
    plan: dict[str, Any] = {"resourceType": "CarePlan", "contained": [*groups, *goals, *generated],
                            "instantiatesCanonical": [top.canonical], "status": "active", "intent": "plan"}  # fmt: skip
    if top.plan.get("title"):
        plan["title"] = top.plan["title"]
    plan["subject"] = {"reference": ctx.subject}
    if ctx.encounter:
        plan["encounter"] = {"reference": ctx.encounter}
    plan["created"] = format_instant(ctx.now)
    if ctx.practitioner:
        plan["author"] = {"reference": ctx.practitioner}
    if goals:
        plan["goal"] = [{"reference": f"#{g['id']}"} for g in goals]
    plan["activity"] = [{"reference": {"reference": f"#{groups[0]['id']}"}}]
    return plan
