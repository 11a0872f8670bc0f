"""Walking a PlanDefinition: which actions apply (applicability conditions), what they point to.

The result is a tree of Nodes (applicable actions only), one Frame per PlanDefinition (nested ones included).
Conditions are evaluated in order and stop at the first false one; expressions in a language other than FHIRPath
are refused before any is evaluated, wherever they are (`refuse_unsupported`). A PlanDefinition that
(indirectly) includes itself is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from carepath.engine.activity import canonical_of
from carepath.engine.context import DEFINITION_TYPES
from carepath.engine.explain import condition_text
from carepath.engine.expressions import Scope, refuse_unsupported
from carepath.engine.run import Run
from carepath.engine.timing import Interval
from carepath.errors import BusinessRuleViolation

CHOICE_BEHAVIOURS = frozenset({"any", "exactly-one", "at-most-one", "one-or-more"})


@dataclass(eq=False)
class Frame:
    """One PlanDefinition being applied (the top one or a nested one)."""

    plan: dict[str, Any]
    canonical: str
    path: str
    owner: Node | None
    roots: list[Node] = field(default_factory=list)
    by_action_id: dict[str, Node] = field(default_factory=dict)
    declared_ids: frozenset[str] = frozenset()
    goal_ids: dict[str, str] = field(default_factory=dict)  # PlanDefinition.goal.id -> contained Goal id

    def nodes(self) -> Iterator[Node]:
        """Every node of this plan and of nested plans, in document order."""
        for root in self.roots:
            yield from root.walk()


@dataclass(eq=False)
class Node:
    """One applicable action and what it produced."""

    action: dict[str, Any]
    path: str
    frame: Frame
    parent: Node | None
    scope: Scope
    conditions: tuple[str, ...]  # applicability conditions that held: the ancestors' and its own
    option: bool  # proposed as one of several choices rather than ordered
    children: list[Node] = field(default_factory=list)
    definition: dict[str, Any] | None = None
    subframe: Frame | None = None
    interval: Interval | None = None
    main: dict[str, Any] | None = None  # the generated request or Task
    task: dict[str, Any] | None = None  # the worklist Task: `main` itself or its companion
    # relatedAction entries with the generated predecessor, or None when the predecessor did not apply
    related: list[tuple[dict[str, Any], Node | None]] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()
        if self.subframe is not None:
            yield from self.subframe.nodes()

    def tasks(self) -> list[dict[str, Any]]:
        """The Tasks that stand for this action: its own, else those of everything below it."""
        if self.task is not None:
            return [self.task]
        below = [*self.children, *(self.subframe.roots if self.subframe else [])]
        return [task for node in below for task in node.tasks()]

    @property
    def label(self) -> str:
        action = self.action
        return str(
            action.get("title")
            or action.get("textEquivalent")
            or action.get("description")
            or action.get("id")
            or self.path
        )


def plan_canonical(plan: dict[str, Any]) -> str:
    return canonical_of(plan) or (f"PlanDefinition/{plan['id']}" if plan.get("id") else "PlanDefinition")


def _declared_ids(actions: list[dict[str, Any]]) -> Iterator[str]:
    for action in actions:
        if isinstance(action.get("id"), str):
            yield action["id"]
        yield from _declared_ids(action.get("action", []))


def collect_plan(
    run: Run, plan: dict[str, Any], path: str, owner: Node | None, stack: tuple[str, ...], option: bool
) -> Frame:
    canonical = plan_canonical(plan)
    if canonical in stack:
        chain = " -> ".join((*stack, canonical))
        raise BusinessRuleViolation(f"PlanDefinition cycle: {chain}", expression=(path,))
    refuse_unsupported(plan, path)
    frame = Frame(plan, canonical, path, owner, declared_ids=frozenset(_declared_ids(plan.get("action", []))))
    scope = Scope.of(run.evaluator, None, plan, path)
    frame.roots = _collect(run, frame, plan.get("action", []), None, scope, (), option, (*stack, canonical))
    return frame


def _applicability(run: Run, action: dict[str, Any], scope: Scope, path: str) -> tuple[str, ...] | None:
    """The applicability conditions that held, or None (with an issue) at the first that did not."""
    held: list[str] = []
    for j, condition in enumerate(action.get("condition", [])):
        if condition.get("kind") != "applicability":
            continue
        where = f"{path}.condition[{j}]"
        if not scope.holds(condition.get("expression") or {}, where):
            required = action.get("requiredBehavior") == "must"
            label = action.get("title") or action.get("id") or path
            run.note(
                f"{'Required action' if required else 'Action'} '{label}' not applicable: "
                f"condition '{condition_text(condition)}' is not true",
                where,
                "warning" if required or action.get("requiredBehavior") == "could" else "information",
            )
            return None
        held.append(condition_text(condition))
    return tuple(held)


def _collect(
    run: Run,
    frame: Frame,
    actions: list[dict[str, Any]],
    parent: Node | None,
    parent_scope: Scope,
    conditions: tuple[str, ...],
    option: bool,
    stack: tuple[str, ...],
) -> list[Node]:
    prefix = parent.path if parent else frame.path
    nodes: list[Node] = []
    for i, action in enumerate(actions):
        path = f"{prefix}.action[{i}]"
        scope = Scope.of(run.evaluator, parent_scope, action, path)
        held = _applicability(run, action, scope, path)
        if held is None:
            _refuse_unsupported_below(run, action, path)
            continue
        node = Node(action, path, frame, parent, scope, conditions + held, option)
        below_option = option or action.get("selectionBehavior") in CHOICE_BEHAVIOURS
        node.children = _collect(
            run, frame, action.get("action", []), node, scope, node.conditions, below_option, stack
        )
        target = _definition(run, frame, action, path)
        if action.get("action") and not node.children and target is None and not action.get("definitionUri"):
            # rqg-1: a RequestGroup action needs a resource or sub-actions; a group none of whose actions
            # applied has neither, so it is left out, and said so.
            run.note(f"Group '{node.label}' left out: none of its actions applies", path)
            continue
        if isinstance(action.get("id"), str):
            frame.by_action_id[action["id"]] = node
        if target is not None and target["resourceType"] == "PlanDefinition":
            node.subframe = collect_plan(
                run, target, f"{path}.definitionCanonical.resolve()", node, stack, below_option
            )
        else:
            node.definition = target
        nodes.append(node)
    return nodes


def _refuse_unsupported_below(run: Run, action: dict[str, Any], path: str) -> None:
    """The ActivityDefinitions an action that does not apply (and its sub-actions) would use: CQL in them is
    refused too, so that whether it is noticed does not depend on the patient. (The actions themselves were
    checked with their PlanDefinition; a definition that cannot be resolved is only an error where it applies.)"""
    canonical = action.get("definitionCanonical")
    found = run.resolver.resolve(canonical) if isinstance(canonical, str) and not canonical.startswith("#") else None
    if found is not None and found.get("resourceType") == "ActivityDefinition":
        refuse_unsupported(found, f"{path}.definitionCanonical.resolve()")
    for i, child in enumerate(action.get("action", [])):
        _refuse_unsupported_below(run, child, f"{path}.action[{i}]")


def _definition(run: Run, frame: Frame, action: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The definition an action points to: `#id` in the plan's contained resources, else through the resolver."""
    canonical = action.get("definitionCanonical")
    if not isinstance(canonical, str):
        return None
    where = f"{path}.definitionCanonical"
    found: dict[str, Any] | None
    if canonical.startswith("#"):
        found = next((r for r in frame.plan.get("contained", []) if f"#{r.get('id')}" == canonical), None)
    else:
        found = run.resolver.resolve(canonical)
    if found is None:
        raise BusinessRuleViolation(f"Cannot resolve definition {canonical!r}", expression=(where,))
    if found.get("resourceType") not in DEFINITION_TYPES:
        raise BusinessRuleViolation(
            f"{canonical!r} is a {found.get('resourceType')}, not a definition", expression=(where,)
        )
    if found["resourceType"] == "ActivityDefinition":
        refuse_unsupported(found, f"{where}.resolve()")
    return found
