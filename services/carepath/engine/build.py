"""Turning applicable actions into resources, in dependency order, with concrete dates and waits-for links.

Order: a node after its parent (children inherit the parent's interval), a nested plan after the action that
includes it, an action after the predecessors its relatedAction names (their final dates, after dynamic
values, are what it counts from). Each dependent Task records the Tasks it waits for (extension
`task-waits-for`) and starts as `draft` with businessStatus "waiting for: ...": `after`/`after-end` make the
action wait for its predecessor, `before`/`before-start` make the predecessor wait for it. Only generated
predecessors count; a relatedAction naming no action of the plan is reported as a warning.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from carepath.engine.activity import (
    Performers,
    action_intent,
    build_request,
    canonical_of,
    companion_task,
    plain_task,
    read_interval,
    request_kind,
    set_interval,
)
from carepath.engine.checks import WriteLog, name_writer
from carepath.engine.explain import PERTAINS_TO_GOAL, WAITS_FOR, Reason, add_extension, explain
from carepath.engine.expressions import Scope
from carepath.engine.graph import dependency_order
from carepath.engine.nodes import Frame, Node
from carepath.engine.paths import set_path
from carepath.engine.run import Run
from carepath.engine.timing import Interval, combine, own_interval, related_interval
from carepath.errors import BusinessRuleViolation

WAITING_RELATIONS = frozenset({"after", "after-end"})
BLOCKING_RELATIONS = frozenset({"before", "before-start"})  # the predecessor waits for this action
# Where a built resource's dates are (`set_interval`), to name the dynamicValue that wrote an invalid one.
_DATED = {"Task": ("restriction.period",), "request": ("occurrenceDateTime", "occurrencePeriod")}


def build_all(run: Run, top: Frame) -> list[Node]:
    """Build every node's resources; returns the nodes in document order."""
    nodes = list(top.nodes())
    for node in nodes:
        node.related = _related(run, node)
    deps = {n: [*([n.parent] if n.parent else []), *([n.frame.owner] if n.frame.owner and not n.parent else []),
                *(pred for _, pred in n.related if pred)] for n in nodes}  # fmt: skip
    for node in dependency_order(nodes, deps, lambda n: n.path):
        _build(run, node)
    _link_waits(nodes)
    return nodes


def _related(run: Run, node: Node) -> list[tuple[dict[str, Any], Node | None]]:
    out: list[tuple[dict[str, Any], Node | None]] = []
    for k, related in enumerate(node.action.get("relatedAction", [])):
        action_id = related.get("actionId")
        if action_id in node.frame.declared_ids:
            out.append((related, node.frame.by_action_id.get(action_id)))
        else:
            run.note(f"relatedAction names no action {action_id!r} of this plan", f"{node.path}.relatedAction[{k}]",
                     "warning")  # fmt: skip
    return out


def _birth_date(run: Run) -> date | None:
    raw = run.evaluator.subject_resource.get("birthDate")
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        return None


def _interval(run: Run, node: Node) -> Interval:
    now = run.ctx.now
    owner = node.parent or node.frame.owner
    base = owner.interval if owner is not None and owner.interval is not None else Interval(now, None)
    anchor = base.start or now
    own = own_interval(node.action, anchor, _birth_date(run), node.path)
    if own is None and node.definition is not None and node.definition["resourceType"] == "ActivityDefinition":
        own = own_interval(node.definition, anchor, _birth_date(run), f"{node.path}.definitionCanonical.resolve()")
    if node.related:
        length = own.end - own.start if own and own.start and own.end else None
        # A predecessor that did not apply counts as done at the anchor: the offset still runs from there.
        anchored = Interval(anchor, anchor)
        return combine([related_interval(rel, (pred.interval if pred else None) or anchored, length, now,
                                         f"{node.path}.relatedAction[{k}]")
                        for k, (rel, pred) in enumerate(node.related)])  # fmt: skip
    return own or base


def _main_resource(run: Run, node: Node) -> dict[str, Any] | None:
    """The resource an action's definition describes (a nested plan yields a RequestGroup, built later)."""
    action, definition, ctx = node.action, node.definition, run.ctx
    title = action.get("title") or action.get("description")
    task_intent = action_intent("Task", option=node.option, persist=ctx.persist)
    if definition is None:
        if node.subframe is not None or (node.children and not action.get("definitionUri")):
            return None  # a nested plan (its RequestGroup comes later) or a group of actions
        # A definitionUri, or an action with neither a definition nor sub-actions: a Task from its title or
        # description (and its dynamicValues), so that the RequestGroup action has a resource (rqg-1).
        task = plain_task(ctx, intent=task_intent, description=node.label)
        if action.get("definitionUri"):
            task["instantiatesUri"] = action["definitionUri"]
        return task
    if definition["resourceType"] == "Questionnaire":
        task = plain_task(ctx, intent=task_intent, description=title or definition.get("title"))
        focus = {"reference": f"Questionnaire/{definition['id']}"} if definition.get("id") else {}
        task["focus"] = {**focus, "display": definition.get("title") or canonical_of(definition) or "Questionnaire"}
        if canonical_of(definition):
            task["input"] = [{"type": {"text": "questionnaire"}, "valueCanonical": canonical_of(definition)}]
        return task
    intent = action_intent(request_kind(definition), option=node.option, persist=ctx.persist)
    request = build_request(definition, ctx, intent=intent, participants=list(action.get("participant", [])),
                            where=f"{node.path}.definitionCanonical")  # fmt: skip
    if request["resourceType"] == "Task" and title:
        request["description"] = title  # the pathway step's own title is the worklist label
    return request


def _roles(run: Run, node: Node) -> tuple[dict[str, Any], ...]:
    """The participant roles of the action's definition and of the action itself (who the work is for)."""
    definition = node.definition if node.definition and node.definition["resourceType"] == "ActivityDefinition" else {}
    return Performers.of([*definition.get("participant", []), *node.action.get("participant", [])], run.ctx).roles


def _dynamic_values(node: Node, resource: dict[str, Any], log: WriteLog) -> None:
    """ActivityDefinition.dynamicValue first, then the action's, each seeing the resource as built so far."""
    sources: list[tuple[dict[str, Any], Scope, str]] = []
    if node.definition is not None and node.definition["resourceType"] == "ActivityDefinition":
        scope = Scope.of(
            node.scope.evaluator, node.scope, node.definition, f"{node.path}.definitionCanonical.resolve()"
        )
        sources.append((node.definition, scope, f"{node.path}.definitionCanonical.resolve()"))
    sources.append((node.action, node.scope, node.path))
    for element, scope, path in sources:
        apply_dynamic_values(element, scope, path, resource, log)


def apply_dynamic_values(
    element: dict[str, Any], scope: Scope, path: str, resource: dict[str, Any], log: WriteLog
) -> None:
    """Each dynamicValue in order; later ones see (and may overwrite) what earlier ones set."""
    for k, dynamic in enumerate(element.get("dynamicValue", [])):
        where = f"{path}.dynamicValue[{k}]"
        values = scope.values(dynamic.get("expression") or {}, f"{where}.expression", resource)
        target = str(dynamic.get("path", ""))
        set_path(resource, target, values, f"{where}.path")
        log.record(resource, target, where)


def _data_requirements(node: Node, task: dict[str, Any]) -> None:
    """R4 action.input/output are DataRequirements: the Task carries them as inputs/outputs to gather."""
    for source, target in (("input", "input"), ("output", "output")):
        for requirement in node.action.get(source, []):
            label = f"{source}: {requirement.get('type', 'data')}"
            task.setdefault(target, []).append({"type": {"text": label}, "valueDataRequirement": requirement})


def _build(run: Run, node: Node) -> None:
    try:
        interval = _interval(run, node)
    except OverflowError as exc:  # e.g. an offset after a timingDateTime at the end of year 9999
        raise BusinessRuleViolation(
            "The action's timing leads out of the range of dates", expression=(node.path,)
        ) from exc
    node.interval = interval
    main = _main_resource(run, node)
    if main is None:
        return
    set_interval(main, interval)
    _dynamic_values(node, main, run.writes)
    main["id"] = run.new_id(main["resourceType"])
    try:
        node.interval = read_interval(main) or interval
    except BusinessRuleViolation as exc:  # a dynamicValue wrote a date that is none: name it
        name_writer(exc, main, _DATED.get(main["resourceType"], _DATED["request"]), run.writes)
        raise
    node.main = main
    if main["resourceType"] == "Task":
        node.task = main
    else:
        node.task = companion_task(main, main["id"], run.ctx, node.option, _roles(run, node))
    if node.task is not main:
        set_interval(node.task, node.interval)
        node.task["description"] = node.label
        node.task["id"] = run.new_id("Task")
    _data_requirements(node, node.task)
    inherited = node.parent.conditions if node.parent else ()
    reason = Reason(node.frame.canonical, node.frame.plan.get("title"), node.action.get("id"),
                    node.label, node.conditions, own=len(node.conditions) - len(inherited),
                    rule=node.action.get("description"))  # fmt: skip
    goals = _goal_links(run, node)
    for resource in {id(main): main, id(node.task): node.task}.values():
        resource.setdefault("basedOn", []).append({"reference": "#"})  # "#" is the containing CarePlan
        explain(resource, reason)
        add_extension(resource, PERTAINS_TO_GOAL, goals)


def _goal_links(run: Run, node: Node) -> list[dict[str, Any]]:
    """pertainsToGoal values for the action's goalId list; the Goals themselves are made with the CarePlan."""
    frame = node.frame
    known = {g.get("id") for g in frame.plan.get("goal", [])}
    links: list[dict[str, Any]] = []
    for k, goal_id in enumerate(node.action.get("goalId", [])):
        if goal_id not in known:
            run.note(f"goalId {goal_id!r} names no goal of the plan", f"{node.path}.goalId[{k}]", "warning")
            continue
        if goal_id not in frame.goal_ids:
            frame.goal_ids[goal_id] = run.new_id("Goal")
        links.append({"valueReference": {"reference": f"#{frame.goal_ids[goal_id]}"}})
    return links


def _link_waits(nodes: list[Node]) -> None:
    waits: dict[Node, list[Node]] = {n: [] for n in nodes}
    for node in nodes:
        for related, predecessor in node.related:
            if predecessor is None:
                continue
            if related.get("relationship") in WAITING_RELATIONS:
                waits[node].append(predecessor)
            elif related.get("relationship") in BLOCKING_RELATIONS:
                waits[predecessor].append(node)
    dependency_order(nodes, waits, lambda n: n.path)  # contradictory before/after content is a cycle: refuse it
    for node, predecessors in waits.items():
        awaited = [task for p in predecessors for task in p.tasks()]
        if not awaited:
            continue
        names = ", ".join(str(t.get("description") or t["id"]) for t in awaited)
        for task in node.tasks():
            add_extension(task, WAITS_FOR, [{"valueReference": {"reference": f"#{t['id']}"}} for t in awaited])
            task["status"] = "draft"
            task["businessStatus"] = {"text": f"waiting for: {names}"}
