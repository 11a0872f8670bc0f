"""Generic walks over pathway JSON: its elements, FHIRPath expressions, codings, canonicals and actions.

Used by the content checks (tests, `pathways load`) and by the diagram generator, so that "every expression" and
"every action" mean the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

FHIRPATH = "text/fhirpath"
# R4 elements of PlanDefinition / ActivityDefinition / Library that hold a canonical reference to other content.
CANONICAL_ELEMENTS = frozenset({"definitionCanonical", "library", "transform", "profile", "derivedFromCanonical"})


def elements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in `node` (depth first) with a FHIRPath-like location, e.g. `action[0].condition[1]`."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from elements(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from elements(item, f"{path}[{i}]")


def fhirpath_expressions(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(location, text) of every R4 Expression in text/fhirpath."""
    for path, element in elements(resource):
        if element.get("language") == FHIRPATH and isinstance(element.get("expression"), str):
            yield path, element["expression"]


def codings(resource: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(location, system, code) of every Coding."""
    for path, element in elements(resource):
        if isinstance(element.get("system"), str) and isinstance(element.get("code"), str) and "value" not in element:
            yield path, element["system"], element["code"]


def canonical_references(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(location, canonical) of every reference to other definitional content."""
    for path, element in elements(resource):
        for key in CANONICAL_ELEMENTS & element.keys():
            values = element[key] if isinstance(element[key], list) else [element[key]]
            yield from ((f"{path}.{key}", value) for value in values if isinstance(value, str))


def actions(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every action of a PlanDefinition, nested ones included, in document order."""
    stack = list(reversed(plan.get("action", [])))
    while stack:
        action = stack.pop()
        yield action
        stack.extend(reversed(action.get("action", [])))


def step_actions(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions that generate a request (they point to a definition); group actions are left out."""
    return [action for action in actions(plan) if "definitionCanonical" in action]
