"""The shipped pathway content is valid R4, self-contained, compiles, and uses only the specification's codes."""

from __future__ import annotations

import re
from typing import Any

from spec_codes import SPEC_CODES, SPEC_HGVS, all_codes, allowed

from carepath.canonical import CODESYSTEM_LOCAL
from carepath.content import walk
from carepath.content.diagram import INFORMED_BY
from carepath.content.stop_rules import THERAPY_ASSESSMENT_CODES
from carepath.fhir.fhirpath import compile_expression
from carepath.fhir.models import model_class

SPEC_STEPS = {f"S{n:02d}" for n in range(1, 20)} | {"S07b"}
# Variables the engine provides itself (carepath.engine.expressions); everything else must be declared.
CONTEXT_VARIABLES = {"data", "now", "subject", "patient", "context", "resource"}
VARIABLE_EXT = "http://hl7.org/fhir/StructureDefinition/variable"
# A quoted literal compared with a code: `code='X'`, `code in ('X' | 'Y')`, `$this = 'HGNC:1'`, `GENE.intersect(...)`.
CODE_LITERAL = re.compile(r"'([A-Za-z]{0,4}[:]?[0-9][0-9A-Za-z:.\-]*|[a-z]+(?:-[a-z]+)+)'")


def _variables(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (ext["valueExpression"]["name"], ext["valueExpression"]["expression"])
        for ext in plan.get("extension", [])
        if ext["url"] == VARIABLE_EXT
    ]


def test_every_file_is_one_valid_r4_resource_with_a_unique_canonical(content: list[dict[str, Any]]) -> None:
    assert len(content) >= 20
    for resource in content:
        model_class(resource["resourceType"]).model_validate(resource)
    keys = [f"{r['url']}|{r['version']}" for r in content]
    assert len(keys) == len(set(keys)), "two files share a url|version"
    ids = [(r["resourceType"], r["id"]) for r in content]
    assert len(ids) == len(set(ids))


def test_every_canonical_reference_resolves_among_the_shipped_files(content: list[dict[str, Any]]) -> None:
    shipped = {r["url"] for r in content} | {f"{r['url']}|{r['version']}" for r in content}
    references = [(r["id"], path, ref) for r in content for path, ref in walk.canonical_references(r)]
    assert len(references) >= 20
    unresolved = [ref for ref in references if ref[2] not in shipped]
    assert unresolved == []


def test_every_fhirpath_expression_compiles(content: list[dict[str, Any]]) -> None:
    expressions = [(r["id"], path, text) for r in content for path, text in walk.fhirpath_expressions(r)]
    assert len(expressions) >= 50
    for _, _, text in expressions:
        compile_expression(text)


TRIGGER_VARIABLES = frozenset({"previous"})


def test_every_variable_used_is_declared_before_use(plan: dict[str, Any]) -> None:
    declared: set[str] = set()
    for name, text in _variables(plan):
        used = {a or b for a, b in re.findall(r"%(?:([A-Za-z_]\w*)|`([^`]+)`)", text)}
        assert used <= declared | CONTEXT_VARIABLES, f"{name} uses {used - declared - CONTEXT_VARIABLES}"
        assert name not in declared, f"{name} declared twice"
        declared.add(name)
    for path, text in walk.fhirpath_expressions({"action": plan["action"]}):
        used = {a or b for a, b in re.findall(r"%(?:([A-Za-z_]\w*)|`([^`]+)`)", text)}
        # A trigger condition runs on the triggering resource, with only %previous (engine/triggers.py).
        allowed = TRIGGER_VARIABLES if ".trigger[" in path else declared | CONTEXT_VARIABLES
        assert used <= allowed, f"{path} uses {used - allowed}"


def test_every_coding_is_one_the_specification_lists(content: list[dict[str, Any]]) -> None:
    found = [(r["id"], path, system, code) for r in content for path, system, code in walk.codings(r)]
    assert len(found) >= 20
    assert [f for f in found if not allowed(f[2], f[3])] == []


def test_every_code_literal_in_an_expression_is_one_the_specification_lists(plan: dict[str, Any]) -> None:
    literals = {m for _, text in walk.fhirpath_expressions(plan) for m in CODE_LITERAL.findall(text)}
    assert {"271299001", "LA6576-8", "HGNC:3236", "distress-thermometer"} <= literals  # the pattern sees codes
    statuses = {"final", "amended", "corrected", "active"}  # FHIR status values, not terminology codes
    assert literals - all_codes() - SPEC_HGVS - statuses == set()


def test_local_codes_are_exactly_the_codesystem_concepts(content: list[dict[str, Any]]) -> None:
    codesystem = next(r for r in content if r["resourceType"] == "CodeSystem")
    assert codesystem["url"] == CODESYSTEM_LOCAL
    concepts = {c["code"] for c in codesystem["concept"]}
    assert concepts == set(SPEC_CODES[CODESYSTEM_LOCAL])
    assert codesystem["count"] == len(concepts)


def test_every_step_of_the_specification_has_its_action(content: list[dict[str, Any]], plan: dict[str, Any]) -> None:
    steps = walk.step_actions(plan)
    assert {a["prefix"] for a in steps} == SPEC_STEPS
    definitions = {f"{r['url']}|{r['version']}": r for r in content if r["resourceType"] == "ActivityDefinition"}
    for action in steps:
        assert definitions[action["definitionCanonical"]]["kind"] in {"ServiceRequest", "CommunicationRequest", "Task"}


def test_related_actions_point_to_existing_actions(plan: dict[str, Any]) -> None:
    ids = {a["id"] for a in walk.actions(plan)}
    targets = [r["actionId"] for a in walk.actions(plan) for r in a.get("relatedAction", [])]
    assert set(targets) == {"S02", "S03", "S04", "S05"}
    informed_by = [e["valueId"] for a in walk.actions(plan) for e in a.get("extension", []) if e["url"] == INFORMED_BY]
    assert sorted(informed_by) == ["S08", "S10"]  # §4.3: soft links S08 -> S09, S10 -> S11, never holds
    assert set(targets) | set(informed_by) <= ids


def test_the_entry_rule_is_the_top_level_applicability(plan: dict[str, Any]) -> None:
    assert plan["url"] == "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
    assert plan["version"] == "1.1.0"
    assert plan["type"]["coding"][0]["code"] == "clinical-protocol"
    (top,) = plan["action"]
    (condition,) = top["condition"]
    assert condition["kind"] == "applicability"
    assert condition["expression"]["expression"] == "%progression or %chemoFailed"


def test_stop_rules_know_exactly_the_therapy_assessment_codes(
    content: list[dict[str, Any]], plan: dict[str, Any]
) -> None:
    definitions = {f"{r['url']}|{r['version']}": r for r in content if r["resourceType"] == "ActivityDefinition"}
    therapy = {"S14", "S15", "S16", "S17", "S18"}
    shipped = {
        (c["system"], c["code"])
        for a in walk.step_actions(plan)
        if a["prefix"] in therapy
        for c in definitions[a["definitionCanonical"]]["code"]["coding"]
    }
    assert shipped == THERAPY_ASSESSMENT_CODES
