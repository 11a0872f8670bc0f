"""What part of a patient's record a pathway can read: derived from its definitions, without running them.

`pathway_data_requirements(plan, resolver)` walks the PlanDefinition, its contained resources and every
ActivityDefinition / nested PlanDefinition it refers to (through the resolver), and returns the resource types —
and, where an expression names them directly, the codes — that its expressions and declared data requirements
(`action.input`, `action.trigger.data`) use. `$apply` fetches only those types from the store (so carepath's own
earlier output — CarePlans, Tasks, Provenances — reaches the engine only when a pathway asks for it), and
`PlanDefinition/$data-requirements` publishes them as R4 `DataRequirement`s. Re-evaluating a pathway when new
data arrives can use the same derivation to decide which writes concern it.

The engine reads the record only through `%data` (the subject itself is always given). The analysis is
deliberately conservative, so that what it returns is never smaller than what the engine may read:

- every `%data` must be followed by `.entry.resource.ofType(T)` or `.entry.resource.where(P)` where a top-level
  conjunct of `P` restricts `resourceType` (`resourceType = 'X'`, `resourceType in ('X' | 'Y')`, or a
  parenthesised `or` of such equalities); the types of that conjunct bound the result;
- any other use of `%data`, a `resolve()` (a reference may point at any resource of the record) or an expression
  in another language makes the requirement *unbounded*: `types` is None and the whole record is fetched;
- `%encounter` adds Encounter (the engine looks it up in the data).

Codes: when such a `where` also has a conjunct `code.coding.exists(system = 'S' and code = 'C')`, that code is
recorded on the requirement (informative: the fetch is by type only, the filtering stays in the expressions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from carepath.engine.context import DefinitionResolver
from carepath.engine.expressions import FHIRPATH, referenced_names

_DATA_READ = re.compile(r"%data\s*\.\s*entry\s*\.\s*resource\s*\.\s*(where|ofType)\s*\(")
_TYPE_NAME = re.compile(r"\s*(?:FHIR\s*\.\s*)?([A-Z][A-Za-z]+)\s*")
_TYPE_EQUALS = re.compile(r"\s*resourceType\s*=\s*'([A-Za-z]+)'\s*")
_TYPE_IN = re.compile(r"\s*resourceType\s+in\s*\(\s*('[A-Za-z]+'(?:\s*\|\s*'[A-Za-z]+')*)\s*\)\s*")
_CODE = re.compile(
    r"\s*code\s*\.\s*coding\s*\.\s*exists\(\s*system\s*=\s*'([^']+)'\s+and\s+code\s*=\s*'([^']+)'\s*\)\s*"
)
_RESOLVE = re.compile(r"\bresolve\s*\(")


@dataclass(frozen=True)
class TypeRequirement:
    """One resource type the pathway reads, with the codes named next to it (empty: any code) and where."""

    type: str
    codes: tuple[tuple[str, str], ...] = ()  # (system, code), sorted
    sources: tuple[str, ...] = ()  # element paths of the expressions / data requirements that need it


@dataclass(frozen=True)
class DataRequirements:
    """The record a pathway can read. `types` None means unbounded: `unbounded` names the expressions why."""

    requirements: tuple[TypeRequirement, ...]
    unbounded: tuple[str, ...] = ()
    definitions: tuple[str, ...] = ()  # canonical `url|version` of every definition walked, root first

    @property
    def types(self) -> frozenset[str] | None:
        return None if self.unbounded else frozenset(r.type for r in self.requirements)

    def reads(self, resource_type: str) -> bool:
        """Whether a resource of this type can change what the pathway computes (e.g. to decide whether a write
        calls for re-evaluating a patient's pathway)."""
        types = self.types
        return types is None or resource_type in types


@dataclass
class _Collector:
    codes: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    uncoded: set[str] = field(default_factory=set)  # types read at least once without a code restriction
    sources: dict[str, list[str]] = field(default_factory=dict)
    unbounded: list[str] = field(default_factory=list)

    def add(self, type_name: str, where: str, codes: set[tuple[str, str]]) -> None:
        self.codes.setdefault(type_name, set()).update(codes)
        if not codes:
            self.uncoded.add(type_name)
        if where not in self.sources.setdefault(type_name, []):
            self.sources[type_name].append(where)

    def result(self, definitions: list[str]) -> DataRequirements:
        requirements = tuple(
            TypeRequirement(t, () if t in self.uncoded else tuple(sorted(self.codes[t])), tuple(self.sources[t]))
            for t in sorted(self.codes)
        )
        return DataRequirements(requirements, tuple(self.unbounded), tuple(definitions))


def pathway_data_requirements(plan: Mapping[str, Any], resolver: DefinitionResolver) -> DataRequirements:
    """The resource types (and directly named codes) that applying `plan` can read from the subject's record."""
    collector = _Collector()
    definitions: list[str] = []
    seen: set[str] = set()
    pending: list[tuple[Mapping[str, Any], str]] = [(plan, str(plan.get("resourceType", "PlanDefinition")))]
    while pending:
        definition, path = pending.pop(0)
        url, version = definition.get("url"), definition.get("version")
        if isinstance(url, str):  # an inline PlanDefinition may have no url: nothing to name
            definitions.append(f"{url}|{version}" if version else url)
        for canonical, value, where in _walk(definition, path):
            if canonical is not None:
                if canonical.startswith("#") or canonical in seen:
                    continue  # contained definitions are walked as part of their container
                seen.add(canonical)
                target = resolver.resolve(canonical)
                if target is not None:
                    pending.append((target, f"{where}.resolve()"))
            elif "expression" in value:
                _expression(value, where, collector)
            else:
                _declared(value, where, collector)
    return collector.result(definitions)


def _walk(value: Any, path: str) -> Iterator[tuple[str | None, Mapping[str, Any], str]]:
    """(definitionCanonical, {}, path), (None, Expression, path) and (None, DataRequirement, path) found in value."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("expression"), str) and "language" in value:
        yield None, value, path
    for key, item in value.items():
        where = f"{path}.{key}"
        if key == "definitionCanonical" and isinstance(item, str):
            yield item, {}, where
        elif key in ("input", "data") and isinstance(item, list):  # action.input, action.trigger.data
            for i, requirement in enumerate(item):
                if isinstance(requirement, dict) and isinstance(requirement.get("type"), str):
                    yield None, requirement, f"{where}[{i}]"
        else:
            yield from _walk(item, where)


def _declared(requirement: Mapping[str, Any], where: str, collector: _Collector) -> None:
    """An R4 DataRequirement written in the definition: its type, with the codes of its codeFilters."""
    codes = {(str(c.get("system", "")), str(c["code"]))
             for f in requirement.get("codeFilter", []) for c in f.get("code", []) if c.get("code")}  # fmt: skip
    collector.add(str(requirement["type"]), where, codes)


def _expression(expression: Mapping[str, Any], where: str, collector: _Collector) -> None:
    text = expression["expression"]
    if expression.get("language") != FHIRPATH:
        collector.unbounded.append(where)  # the engine refuses it when applied; nothing can be said of its reads
        return
    names = referenced_names(text)
    if "encounter" in names:
        collector.add("Encounter", where, set())
    if _RESOLVE.search(text):
        collector.unbounded.append(where)
        return
    if "data" not in names:
        return
    reads = list(_DATA_READ.finditer(text))
    if len(reads) != text.count("%data") or "%`data`" in text:
        collector.unbounded.append(where)  # a %data not followed by a recognised type restriction
        return
    for match in reads:
        bound = _bound(match.group(1), _argument(text, match.end()))
        if bound is None:
            collector.unbounded.append(where)
            return
        types, codes = bound
        for type_name in types:
            collector.add(type_name, where, codes)


def _bound(function: str, argument: str | None) -> tuple[set[str], set[tuple[str, str]]] | None:
    """The types (and codes) an `ofType(T)` / `where(P)` step lets through, or None when it does not bound them."""
    if argument is None:
        return None
    if function == "ofType":
        match = _TYPE_NAME.fullmatch(argument)
        return ({match[1]}, set()) if match else None
    types: set[str] | None = None
    codes: set[tuple[str, str]] = set()
    for conjunct in _split(argument, "and"):
        found = _types_of(conjunct)
        if found is not None:
            types = found if types is None else types & found
        code = _CODE.fullmatch(conjunct)
        if code:
            codes.add((code[1], code[2]))
    return None if types is None else (types, codes)


def _types_of(conjunct: str) -> set[str] | None:
    """The types one conjunct admits, if it is a restriction on resourceType alone."""
    equals = _TYPE_EQUALS.fullmatch(conjunct)
    if equals:
        return {equals[1]}
    within = _TYPE_IN.fullmatch(conjunct)
    if within:
        return {part.strip().strip("'") for part in within[1].split("|")}
    inner = conjunct.strip()
    if inner.startswith("(") and _argument(inner, 1) == inner[1:-1]:
        alternatives = [_types_of(part) for part in _split(inner[1:-1], "or")]
        if all(a is not None for a in alternatives):
            return set().union(*(a for a in alternatives if a is not None))
    return None


def _argument(text: str, start: int) -> str | None:
    """The text from `start` up to the parenthesis closing the one just before it (strings skipped)."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char in "'`":
            i = _string_end(text, i)
            if i == len(text):
                return None
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _split(text: str, keyword: str) -> list[str]:
    """`text` split at the top-level boolean `keyword` (outside parentheses and strings)."""
    parts, depth, last, i = [], 0, 0, 0
    pattern = re.compile(rf"\s{keyword}\s")
    while i < len(text):
        char = text[i]
        if char in "'`":
            i = _string_end(text, i)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            match = pattern.match(text, i)
            if match:
                parts.append(text[last:i])
                last = i = match.end()
                continue
        i += 1
    parts.append(text[last:])
    return parts


LIBRARY_TYPE = "http://terminology.hl7.org/CodeSystem/library-type"


def module_definition_library(plan: Mapping[str, Any], requirements: DataRequirements) -> dict[str, Any]:
    """The R4 `module-definition` Library of `$data-requirements`: one DataRequirement per type, the walked
    definitions as `depends-on`. An unbounded requirement is stated as type `Resource` (any resource)."""
    data: list[dict[str, Any]] = []
    for requirement in requirements.requirements:
        entry: dict[str, Any] = {"type": requirement.type}
        if requirement.codes:
            entry["codeFilter"] = [{"path": "code", "code": [{"system": s, "code": c} for s, c in requirement.codes]}]
        data.append(entry)
    if requirements.unbounded:
        data.append({"type": "Resource"})
    description = "Data the pathway's expressions and declared data requirements read from the subject's record."
    if requirements.unbounded:
        description += " Not bounded by type, because of: " + ", ".join(requirements.unbounded) + "."
    return {
        "resourceType": "Library",
        "status": "active",
        "type": {"coding": [{"system": LIBRARY_TYPE, "code": "module-definition"}]},
        "name": f"{plan.get('name') or 'PlanDefinition'}DataRequirements",
        "title": f"Data requirements of {plan.get('title') or plan.get('name') or 'the PlanDefinition'}",
        "description": description,
        "relatedArtifact": [{"type": "depends-on", "resource": canonical} for canonical in requirements.definitions],
        "dataRequirement": data,
    }


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the string (or backtick name) opened at `start`; len(text) if unclosed."""
    end = text.find(text[start], start + 1)
    while end != -1 and text[end - 1] == "\\":
        end = text.find(text[start], end + 1)
    return len(text) if end == -1 else end
