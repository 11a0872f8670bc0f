"""The pathway drawn for one CarePlan: the PlanDefinition's steps as a layered graph, each with its state.

Steps and dependencies come from `content.diagram.step_edges` (the same extraction as the README's Mermaid
diagram); a step's layer is the length of the longest chain of steps before it. State, from the step's Task:
not applicable (no Task: the step's condition was false), waiting (draft: held), ready, in progress, on hold,
done, overdue (open and past due), cancelled. Each box says its state in words, and the border style differs
too, so colour is never the only cue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carepath.content.diagram import step_edges
from carepath.content.walk import step_actions
from carepath.engine.graph import dependency_order
from carepath.web.views.fhir import Resource, due, ended, generated_by
from carepath.web.views.i18n import Translator
from carepath.web.views.svg import root, shorten, text

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 190, 50, 60, 16, 12


def step_state(task: Resource | None, now: datetime) -> str:
    if task is None:
        return "not-applicable"
    if (end := ended(task)) is not None:
        return end
    status = str(task.get("status", ""))
    moment = due(task)
    if status != "draft" and moment is not None and moment < now:
        return "overdue"
    return {"draft": "waiting", "in-progress": "in-progress", "on-hold": "on-hold"}.get(status, "ready")


def step_tasks(tasks: list[Resource]) -> dict[str, Resource]:
    """actionId -> the Task generated for that step (the newest, when a step was generated more than once)."""
    out: dict[str, Resource] = {}
    for task in sorted(tasks, key=lambda k: str((k.get("meta") or {}).get("lastUpdated", ""))):
        for action_id in generated_by(task, "actionId"):
            out[action_id] = task
    return out


def layers(actions: list[dict[str, Any]], edges: list[tuple[str, str, bool]]) -> dict[str, int]:
    """actionId -> column: one more than its furthest predecessor (longest path), sources in column 0."""
    ids = [str(a["id"]) for a in actions]
    before: dict[str, list[str]] = {i: [] for i in ids}
    for pred, succ, _ in edges:
        before[succ].append(pred)
    column: dict[str, int] = {}
    for node in dependency_order(ids, before, lambda n: n):
        column[node] = 1 + max((column[p] for p in before[node]), default=-1)
    return column


def pathway_svg(plan: Resource, tasks: list[Resource], now: datetime, t: Translator) -> str:
    actions = step_actions(plan)
    edges = step_edges(actions)
    column = layers(actions, edges)
    by_step = step_tasks(tasks)
    position: dict[str, tuple[int, int]] = {}
    rows_used: dict[int, int] = {}
    for action in actions:
        col = column[action["id"]]
        position[action["id"]] = (col, rows_used.get(col, 0))
        rows_used[col] = rows_used.get(col, 0) + 1
    width = MARGIN * 2 + (max(column.values(), default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + max(rows_used.values(), default=1) * (BOX_H + GAP_Y) - GAP_Y

    def corner(action_id: str) -> tuple[int, int]:
        col, row = position[action_id]
        return MARGIN + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y)

    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" class="arrowhead"/></marker></defs>'
    ]
    for pred, succ, hold in edges:
        (x1, y1), (x2, y2) = corner(pred), corner(succ)
        kind = "hold" if hold else "informs"
        body.append(f'<line class="edge {kind}" x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2 - 2}" '
                    f'y2="{y2 + BOX_H // 2}" marker-end="url(#arrow)"/>')  # fmt: skip
    counts: dict[str, int] = {}
    for action in actions:
        x, y = corner(action["id"])
        state = step_state(by_step.get(action["id"]), now)
        counts[state] = counts.get(state, 0) + 1
        name = f"{action.get('prefix') or action['id']} {action.get('title', '')}".strip()
        words = t(f"step.{state}")
        body.append(
            f'<g class="step {state}"><title>{text(name)}: {text(words)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text class="step-name" x="{x + 8}" y="{y + 20}">{text(shorten(name, 28))}</text>'
            f'<text class="step-state" x="{x + 8}" y="{y + 39}">{text(words)}</text></g>'
        )
    title = t("diagram.title", name=plan.get("title") or plan.get("name") or plan.get("id"), n=len(actions))
    desc = ", ".join(f"{t('step.' + s)}: {n}" for s, n in sorted(counts.items()))
    return root(width, height, title, desc, body, "pathway")
