"""The generated part of pathways/README.md: the diagram, each step in plain words, and the configurable values.

Everything here is read from the shipped PlanDefinition and its ActivityDefinitions (titles, `purpose` as the
rationale, the applicability condition's description, the priority and due-date rules' descriptions, relatedAction
holds, the variables with a literal default), so the README cannot say something the content does not do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from carepath.content.diagram import INFORMED_BY, mermaid
from carepath.content.walk import step_actions

BEGIN_MARK = "<!-- BEGIN GENERATED: python scripts/pathway_diagram.py --write -->"
END_MARK = "<!-- END GENERATED -->"
VARIABLE_EXT = "http://hl7.org/fhir/StructureDefinition/variable"
DUE_PATHS = frozenset({"occurrencePeriod.end", "occurrenceDateTime", "restriction.period.end"})
LITERAL_DEFAULT = re.compile(r"^\d+(\.\d+)?( [a-z]+)?$")  # `3`, `28 days`, `12 months`: a parameter's default
Resource = dict[str, Any]


def _rule(action: Resource, paths: Iterable[str]) -> str | None:
    wanted = set(paths)
    for dynamic in action.get("dynamicValue", []):
        if dynamic.get("path") in wanted:
            return str((dynamic.get("expression") or {}).get("description") or "")
    return None


def _due(action: Resource) -> str:
    rule = _rule(action, DUE_PATHS)
    if rule:
        return rule
    timing = action.get("timingDuration") or {}
    after = [r["actionId"] for r in action.get("relatedAction", []) if r.get("relationship") == "after-end"]
    return f"{timing.get('value')} {timing.get('unit')} after {', '.join(after)} is completed"


def _work(definition: Resource) -> str:
    codings = definition.get("code", {}).get("coding", [])
    coded = ", ".join(f"`{c['code']}` {c.get('display', '')}".strip() for c in codings)
    return f"{definition.get('kind')}: {coded}"


def _step(action: Resource, definition: Resource) -> list[str]:
    waits = [r["actionId"] for r in action.get("relatedAction", []) if r.get("relationship") == "after-end"]
    informed = [e["valueId"] for e in action.get("extension", []) if e.get("url") == INFORMED_BY]
    created = (action.get("condition") or [{}])[0].get("expression", {}).get("description") or "Always."
    priority = _rule(action, ["priority"]) or f"{definition.get('priority', 'routine')} (fixed)"
    lines = [
        f"#### {action.get('prefix', action['id'])} {action.get('title', '')}",
        "",
        f"- **Why:** {definition.get('purpose', '')}",
        f"- **Created when:** {created}",
        f"- **Work item:** {_work(definition)}; done by: {definition['participant'][0]['role']['text']}",
        f"- **Priority:** {priority}",
        f"- **Due:** {_due(action)}",
    ]
    if waits:
        lines.append(f"- **Waits for:** {', '.join(waits)} (only those generated for the patient)")
    if informed:
        lines.append(f"- **Informed by:** {', '.join(informed)} (never blocked by it)")
    return [*lines, ""]


def _parameters(plan: Resource) -> list[str]:
    lines = ["| Parameter | Default | Meaning |", "|---|---|---|"]
    for ext in plan.get("extension", []):
        value = ext.get("valueExpression") or {}
        if ext.get("url") == VARIABLE_EXT and LITERAL_DEFAULT.match(str(value.get("expression", ""))):
            lines.append(f"| `{value['name']}` | {value['expression']} | {value.get('description', '')} |")
    return lines


def generated_block(plan: Resource, definitions: Iterable[Resource]) -> str:
    """The README block between the markers (markers included)."""
    activities = [d for d in definitions if d.get("resourceType") == "ActivityDefinition"]
    by_canonical = {f"{d['url']}|{d['version']}": d for d in activities}
    steps = [line for a in step_actions(plan) for line in _step(a, by_canonical[a["definitionCanonical"]])]
    return "\n".join([
        BEGIN_MARK, "", "### Diagram", "", "```mermaid", mermaid(plan).rstrip("\n"), "```", "",
        "### Steps", "", *steps,
        "### Configurable values", "",
        "Pass any of these as an `$apply` parameter of the same name to override the default.", "",
        *_parameters(plan), "", END_MARK,
    ])  # fmt: skip


def replace_block(readme: str, plan: Resource, definitions: Iterable[Resource]) -> str:
    """`readme` with its generated block replaced; ValueError when the markers are missing."""
    start, end = readme.find(BEGIN_MARK), readme.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN_MARK} ... {END_MARK} block")
    return readme[:start] + generated_block(plan, definitions) + readme[end + len(END_MARK) :]
