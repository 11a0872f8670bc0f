"""A Mermaid flowchart of a PlanDefinition's steps and dependencies, generated so it cannot drift from the content.

Steps are grouped by their place around the pivot step (the one others wait for, the RCP here): the steps it waits
for, the steps waiting for it, and the steps that run in parallel from day one. A solid arrow is a hold
(relatedAction after-end); a dotted arrow is a "soft" link (our `action-informed-by` extension) that informs but
never blocks. Steps created only under a condition are drawn with rounded ends.
"""

from __future__ import annotations

import re
from typing import Any

from carepath.canonical import extension_url
from carepath.content.walk import step_actions

HOLD = "after-end"
INFORMED_BY = extension_url("action-informed-by")
BEFORE_PIVOT, PARALLEL, AFTER_PIVOT = "Before the RCP", "In parallel from day one", "After the RCP"


def _node_id(action_id: str) -> str:
    return re.sub(r"\W", "_", action_id)


def _label(action: dict[str, Any]) -> str:
    text = f"{action.get('prefix') or action['id']} {action.get('title', '')}".strip()
    return text.replace('"', "#quot;")


def _node(action: dict[str, Any]) -> str:
    label = _label(action)
    shape = f'(["{label}"])' if action.get("condition") else f'["{label}"]'
    return f"        {_node_id(action['id'])}{shape}"


def step_edges(actions: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(predecessor, successor, is_hold) for every relatedAction and every informed-by link between steps (also
    what the worklist's pathway drawing lays out)."""
    ids = {a["id"] for a in actions}
    holds = [
        (related["actionId"], action["id"], related.get("relationship") == HOLD)
        for action in actions
        for related in action.get("relatedAction", [])
        if related.get("actionId") in ids
    ]
    soft = [
        (ext["valueId"], action["id"], False)
        for action in actions
        for ext in action.get("extension", [])
        if ext.get("url") == INFORMED_BY and ext.get("valueId") in ids
    ]
    return holds + soft


def _phases(actions: list[dict[str, Any]], edges: list[tuple[str, str, bool]]) -> dict[str, list[dict[str, Any]]]:
    holds = [(before, after) for before, after, hold in edges if hold]
    waited_on = {before for before, _ in holds}
    waiting = {after for _, after in holds}
    pivots = waited_on & waiting  # waits for some steps and is waited for by others
    before = {b for b, a in holds if a in pivots} | pivots
    phases: dict[str, list[dict[str, Any]]] = {BEFORE_PIVOT: [], PARALLEL: [], AFTER_PIVOT: []}
    for action in actions:
        if action["id"] in before:
            phases[BEFORE_PIVOT].append(action)
        elif action["id"] in waiting:
            phases[AFTER_PIVOT].append(action)
        else:
            phases[PARALLEL].append(action)
    return phases


def _entry_rule(plan: dict[str, Any]) -> str | None:
    """The plain-words applicability of the top-level group action (the pathway's entry rule), if any."""
    for action in plan.get("action", []):
        for condition in action.get("condition", []) if action.get("action") else []:
            text = (condition.get("expression") or {}).get("description")
            if condition.get("kind") == "applicability" and text:
                return str(text).replace('"', "#quot;")
    return None


def mermaid(plan: dict[str, Any]) -> str:
    """The flowchart (without the ```mermaid fence) for `plan`."""
    actions = step_actions(plan)
    edges = step_edges(actions)
    entry = _entry_rule(plan)
    lines = ["flowchart LR"]
    if entry is not None:
        lines.append(f'    entry{{{{"Pathway entry: {entry}"}}}}')
    for n, (title, members) in enumerate(_phases(actions, edges).items()):
        lines.append(f'    subgraph phase{n}["{title}"]')
        lines.extend(_node(action) for action in members)
        lines.append("    end")
        if entry is not None and members and title != AFTER_PIVOT:
            lines.append(f"    entry --> phase{n}")
    for before, after, hold in edges:
        arrow = "-->" if hold else "-.->|informs|"
        lines.append(f"    {_node_id(before)} {arrow} {_node_id(after)}")
    return "\n".join(lines) + "\n"
