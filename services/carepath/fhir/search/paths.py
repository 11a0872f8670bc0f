"""Compile a search expression branch into a plain element walk, with the FHIR type of what it yields.

fhirpathpy costs ~50 µs per evaluation (~150 µs with `where(resolve() is ...)`), too slow to run ~25 expressions
on every write. Most spec expressions are simple paths, optionally ending in `as T` / `.as(T)` or
`.where(resolve() is T)`; those are walked directly over the JSON, choice elements resolved with the R4 model
that fhirpathpy itself uses. Any other branch is evaluated by `carepath.fhir.fhirpath.evaluate`. A test checks
both give the same values over the official examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carepath.fhir.fhirpath import R4_MODEL, evaluate, reference_stub

_PATH2TYPE: dict[str, str] = R4_MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = R4_MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = R4_MODEL["pathsDefinedElsewhere"]

_SIMPLE_RE = re.compile(
    r"\(?(?P<path>[A-Za-z]+(?:\.[A-Za-z]+)+)"
    r"(?:\s+as\s+(?P<as1>[A-Za-z]+)\)|\.as\((?P<as2>[A-Za-z]+)\))?"
    r"(?:\.where\(resolve\(\) is (?P<is>[A-Za-z]+)\))?"
)
_PREFIX_RE = re.compile(r"\(?([A-Za-z]+(?:\.[A-Za-z]+)+)")

Typed = tuple[Any, str | None]  # a value and its FHIR type (None: not known statically)


@dataclass(frozen=True)
class _Step:
    keys: tuple[tuple[str, str | None], ...]  # JSON keys to read (several for a choice element) and their types


@dataclass(frozen=True)
class Branch:
    """One `|` branch, ready to run: `run(resource)` returns the typed values it selects."""

    expression: str
    run: Callable[[dict[str, Any]], list[Typed]]
    roots: tuple[str, ...] = ()  # top-level keys the walk starts from: absent from a resource -> nothing to do


def compile_branch(expression: str) -> Branch:
    match = _SIMPLE_RE.fullmatch(expression)
    if match is not None:
        names = match["path"].split(".")
        steps = _steps(names[0], names[1:], match["as1"] or match["as2"])
        if steps is not None:
            return Branch(expression, _walker(steps, match["is"]), tuple(key for key, _ in steps[0].keys))
    return Branch(expression, _evaluator(expression, _prefix_type(expression)))


def _steps(root: str, names: list[str], as_type: str | None) -> list[_Step] | None:
    """The keys to read at each level; None when the model does not know the path (then fhirpathpy decides)."""
    steps: list[_Step] = []
    context = root
    for i, name in enumerate(names):
        path = f"{context}.{name}"
        path = _ELSEWHERE.get(path, path)
        if path in _CHOICES:
            wanted = [t for t in _CHOICES[path] if as_type is None or t.lower() == as_type.lower()]
            keys = tuple((name + t, _primitive_name(t)) for t in wanted)
            if i != len(names) - 1 or not keys:
                return None  # a choice in the middle of a path: leave it to fhirpathpy
            steps.append(_Step(keys))
            return steps
        fhir_type = _PATH2TYPE.get(path)
        if as_type is not None and i == len(names) - 1 and fhir_type != as_type:
            return None  # `as` on a non-choice element filters by type: leave it to fhirpathpy
        steps.append(_Step(((name, _normal_type(fhir_type)),)))
        context = fhir_type if fhir_type and fhir_type[0].isupper() and fhir_type != "BackboneElement" else path
    return steps


def _primitive_name(choice_type: str) -> str:
    """The model spells choice types capitalised ('DateTime'); FHIR primitive names start lower case."""
    capitalised_complex = choice_type not in _PRIMITIVE_CHOICES
    return choice_type if capitalised_complex else choice_type[0].lower() + choice_type[1:]


_PRIMITIVE_CHOICES = frozenset({
    "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant", "Integer",
    "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid",
})  # fmt: skip


def _normal_type(fhir_type: str | None) -> str | None:
    return "string" if fhir_type == "System.String" else fhir_type


def _walker(steps: list[_Step], resolve_is: str | None) -> Callable[[dict[str, Any]], list[Typed]]:
    def run(resource: dict[str, Any]) -> list[Typed]:
        nodes: list[Typed] = [(resource, None)]
        for step in steps:
            nodes = [found for node, _ in nodes if isinstance(node, dict) for found in _read(node, step)]
        if resolve_is is not None:
            nodes = [(v, t) for v, t in nodes if _reference_type(v) == resolve_is]
        return nodes

    return run


def _read(node: dict[str, Any], step: _Step) -> list[Typed]:
    out: list[Typed] = []
    for key, fhir_type in step.keys:
        value = node.get(key)
        if isinstance(value, list):
            out.extend((v, fhir_type) for v in value if v is not None)
        elif value is not None:
            out.append((value, fhir_type))
    return out


def _reference_type(value: Any) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else value if isinstance(value, str) else None
    stub = reference_stub(ref) if isinstance(ref, str) else None
    return stub["resourceType"] if stub else None


def _prefix_type(expression: str) -> str | None:
    """The static type of a branch like `Patient.telecom.where(system='email')`: `where` keeps the type."""
    match = _PREFIX_RE.match(expression)
    if match is None or expression.startswith("("):
        return None
    names = match.group(1).split(".")
    steps = _steps(names[0], names[1:], None)
    if not steps or len(steps[-1].keys) != 1:
        return None
    return steps[-1].keys[0][1]


def _evaluator(expression: str, fhir_type: str | None) -> Callable[[dict[str, Any]], list[Typed]]:
    def run(resource: dict[str, Any]) -> list[Typed]:
        return [(v, fhir_type) for v in evaluate(resource, expression)]

    return run
